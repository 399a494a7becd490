/* Host tool for the codec tests.
 *   tinyfleet_codec_tool decode MAX_BYTES FILE...   feed the files, in order, to one assembler
 *       and print JSON: {"result": code, "decoded": [...], "message": {...} | null,
 *       "roundtrip": bool} (roundtrip: re-encoding every whole message gave its bytes)
 *   tinyfleet_codec_tool fuzz SEED ITERATIONS FILE...   decode mutated copies of the files
 *       (bit flips, truncations, splices, random bytes); prints outcome counts. Built with
 *       sanitizers, a crash or UB report fails the test.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyfleet_codec.h"

#define MAX_FILE (1u << 20)
#define MAX_FILES 64
#define MAX_CHUNKS 256

static uint8_t g_files[MAX_FILES][4096];
static size_t g_lens[MAX_FILES];
static uint8_t g_assembly[MAX_FILE];
static uint8_t g_encoded[MAX_FILE];
static float g_dense[MAX_FILE / 4];
static tinyfleet_wire_span g_spans[MAX_CHUNKS];

static void print_str(const uint8_t *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; ++i) {
        if (s[i] == '"' || s[i] == '\\') {
            printf("\\%c", s[i]);
        } else if (s[i] < 0x20) {
            printf("\\u%04x", s[i]);
        } else {
            putchar(s[i]);
        }
    }
    putchar('"');
}

static const char *type_name(uint8_t t)
{
    static const char *names[] = {"?", "TRAIN", "EVALUATE", "REPLY", "CHUNK", "ERROR"};
    return t <= 5 ? names[t] : "?";
}

static void print_message(const tinyfleet_wire_message *m)
{
    printf("{\"type\": \"%s\", \"round\": %" PRIu32 ", \"msg_id\": %" PRIu32 ", \"device_id\": ",
           type_name(m->type), m->round, m->msg_id);
    print_str(m->device_id, m->device_len);
    if (m->type == TINYFLEET_MSG_CHUNK) {
        printf(", \"index\": %u, \"count\": %u, \"total_len\": %" PRIu32 ", \"offset\": %" PRIu32
               ", \"length\": %" PRIu32 "}",
               m->chunk_index, m->chunk_count, m->total_len, m->offset, m->chunk_len);
        return;
    }
    printf(", \"fields\": [");
    for (uint8_t i = 0; i < m->n_fields; ++i) {
        const tinyfleet_wire_field *f = &m->fields[i];
        printf("%s{\"key\": ", i ? ", " : "");
        print_str(f->key, f->key_len);
        switch (f->type) {
        case TINYFLEET_FIELD_INT64:
            printf(", \"type\": \"int64\", \"value\": %" PRId64 "}", tinyfleet_wire_field_int64(f));
            break;
        case TINYFLEET_FIELD_FLOAT64:
            printf(", \"type\": \"float64\", \"value\": %.17g}", tinyfleet_wire_field_float64(f));
            break;
        case TINYFLEET_FIELD_BOOL:
            printf(", \"type\": \"bool\", \"value\": %s}", f->value[0] ? "true" : "false");
            break;
        default:
            printf(", \"type\": \"string\", \"value\": ");
            print_str(f->value, f->value_len);
            printf("}");
        }
    }
    printf("], \"arrays\": [");
    for (uint8_t i = 0; i < m->n_arrays; ++i) {
        const tinyfleet_wire_array *a = &m->arrays[i];
        printf("%s{\"name\": ", i ? ", " : "");
        print_str(a->name, a->name_len);
        printf(", \"dtype\": \"%s\", \"shape\": [", a->dtype == TINYFLEET_DTYPE_INT8 ? "int8" : "float32");
        for (uint8_t d = 0; d < a->ndim; ++d) {
            printf("%s%" PRIu32, d ? ", " : "", a->dims[d]);
        }
        printf("], \"sparse\": %s, \"scale\": %.9g, \"zero_point\": %" PRId32 ", \"indices\": ",
               a->sparse ? "true" : "false", (double)a->scale, a->zero_point);
        if (a->sparse) {
            printf("[");
            for (uint32_t k = 0; k < a->count; ++k) {
                printf("%s%" PRIu32, k ? ", " : "", tinyfleet_wire_array_index(a, k));
            }
            printf("]");
        } else {
            printf("null");
        }
        printf(", \"values\": [");
        for (uint32_t k = 0; k < a->count; ++k) {
            if (a->dtype == TINYFLEET_DTYPE_INT8) {
                printf("%s%d", k ? ", " : "", (int)(int8_t)a->values[k]);
            } else {
                printf("%s%.9g", k ? ", " : "", (double)tinyfleet_wire_array_value(a, k));
            }
        }
        printf("], \"dense_float32\": [");
        if (tinyfleet_wire_array_dense(a, g_dense, (uint32_t)(sizeof g_dense / sizeof g_dense[0])) ==
            TINYFLEET_OK) {
            for (uint64_t k = 0; k < a->size; ++k) {
                printf("%s%.9g", k ? ", " : "", (double)g_dense[k]);
            }
        }
        printf("]}");
    }
    printf("]}");
}

static int read_file(const char *path, int slot)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    g_lens[slot] = fread(g_files[slot], 1, sizeof g_files[slot], f);
    fclose(f);
    return 0;
}

static int roundtrip_ok(const tinyfleet_wire_message *m, const uint8_t *bytes, size_t len)
{
    size_t n = 0;
    if (tinyfleet_wire_encode(m, g_encoded, sizeof g_encoded, &n) != TINYFLEET_OK) {
        return 0;
    }
    return n == len && memcmp(g_encoded, bytes, len) == 0;
}

static int cmd_decode(uint32_t max_bytes, int n_files)
{
    if (max_bytes > MAX_FILE) {
        fprintf(stderr, "limit %" PRIu32 " above this tool's %u-byte buffer\n", max_bytes, MAX_FILE);
        return 2;
    }
    tinyfleet_wire_assembler as;
    tinyfleet_wire_assembler_init(&as, g_assembly, max_bytes, g_spans, MAX_CHUNKS);
    tinyfleet_status result = TINYFLEET_OK;
    int roundtrip = 1;
    int have_message = 0;
    tinyfleet_wire_message msg, whole;
    printf("{\"decoded\": [");
    for (int i = 0; i < n_files && result == TINYFLEET_OK; ++i) {
        /* A plain decode first, for the per-file description. */
        tinyfleet_status st = tinyfleet_wire_decode(g_files[i], g_lens[i], max_bytes, &msg);
        if (st == TINYFLEET_OK) {
            printf("%s", i ? ", " : "");
            print_message(&msg);
            if (msg.type != TINYFLEET_MSG_CHUNK && !roundtrip_ok(&msg, g_files[i], g_lens[i])) {
                roundtrip = 0;
            }
        }
        int complete = 0;
        result = tinyfleet_wire_assembler_add(&as, g_files[i], g_lens[i], &whole, &complete);
        if (result == TINYFLEET_OK && complete) {
            have_message = 1;
            if (whole.type != TINYFLEET_MSG_CHUNK && msg.type == TINYFLEET_MSG_CHUNK &&
                !roundtrip_ok(&whole, g_assembly, as.total_len)) {
                roundtrip = 0;
            }
        }
    }
    printf("], \"result\": \"%s\", \"roundtrip\": %s, \"message\": ", tinyfleet_wire_error_code(result),
           roundtrip ? "true" : "false");
    if (result == TINYFLEET_OK && have_message) {
        print_message(&whole);
    } else {
        printf("null");
    }
    printf("}\n");
    return 0;
}

static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static int cmd_fuzz(uint32_t seed, long iterations, int n_files)
{
    static uint8_t buf[8192];
    static tinyfleet_wire_message msg;
    long outcomes[16] = {0};
    tinyfleet_wire_assembler as;
    tinyfleet_wire_assembler_init(&as, g_assembly, 4096, g_spans, MAX_CHUNKS);
    rng_state = seed ? seed : 1u;
    for (long it = 0; it < iterations; ++it) {
        const int src = (int)(rng() % (uint32_t)n_files);
        size_t len = g_lens[src];
        memcpy(buf, g_files[src], len);
        const uint32_t kind = rng() % 5;
        if (kind == 0) { /* flip bits */
            const uint32_t flips = 1 + rng() % 4;
            for (uint32_t k = 0; k < flips && len; ++k) {
                buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            }
        } else if (kind == 1 && len) { /* truncate */
            len = rng() % len;
        } else if (kind == 2) { /* random bytes of random length */
            len = rng() % 512;
            for (size_t k = 0; k < len; ++k) {
                buf[k] = (uint8_t)rng();
            }
            if (len >= 4 && (rng() & 1)) {
                memcpy(buf, "TFLT", 4);
            }
        } else if (kind == 3 && len > 32) { /* overwrite a body byte, then fix the CRC */
            buf[32 + rng() % (len - 32)] = (uint8_t)rng();
            uint32_t crc = tinyfleet_crc32(buf, 28, 0);
            crc = tinyfleet_crc32(buf + 32, len - 32, crc);
            for (int b = 0; b < 4; ++b) {
                buf[28 + b] = (uint8_t)(crc >> (8 * b));
            }
        } else if (len > 32) { /* grow or shrink the body and fix length + CRC */
            len = 32 + rng() % (len - 31 + 64);
            if (len > sizeof buf) {
                len = sizeof buf;
            }
            const uint32_t body = (uint32_t)(len - 32);
            for (int b = 0; b < 4; ++b) {
                buf[16 + b] = (uint8_t)(body >> (8 * b));
            }
            uint32_t crc = tinyfleet_crc32(buf, 28, 0);
            crc = tinyfleet_crc32(buf + 32, len - 32, crc);
            for (int b = 0; b < 4; ++b) {
                buf[28 + b] = (uint8_t)(crc >> (8 * b));
            }
        }
        /* Decode from an exact-size heap copy so ASan sees any over-read. */
        uint8_t *exact = malloc(len ? len : 1);
        if (!exact) {
            return 1;
        }
        memcpy(exact, buf, len);
        tinyfleet_status st = tinyfleet_wire_decode(exact, len, 4096, &msg);
        if (st == TINYFLEET_OK && msg.type != TINYFLEET_MSG_CHUNK) {
            for (uint8_t a = 0; a < msg.n_arrays; ++a) {
                (void)tinyfleet_wire_array_dense(&msg.arrays[a], g_dense,
                                          (uint32_t)(sizeof g_dense / sizeof g_dense[0]));
            }
            size_t n = 0;
            (void)tinyfleet_wire_encode(&msg, g_encoded, sizeof g_encoded, &n);
        }
        int complete = 0;
        (void)tinyfleet_wire_assembler_add(&as, exact, len, &msg, &complete);
        free(exact);
        outcomes[(unsigned)st < 16 ? (unsigned)st : 15]++;
    }
    printf("{\"iterations\": %ld", iterations);
    for (unsigned s = 0; s < 16; ++s) {
        if (outcomes[s]) {
            printf(", \"%s\": %ld", tinyfleet_wire_error_code((tinyfleet_status)s), outcomes[s]);
        }
    }
    printf("}\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s decode MAX FILE... | fuzz SEED ITERATIONS FILE...\n", argv[0]);
        return 2;
    }
    const int first = 3 + (strcmp(argv[1], "fuzz") == 0);
    const int n_files = argc - first;
    if (n_files < 1 || n_files > MAX_FILES) {
        return 2;
    }
    for (int i = 0; i < n_files; ++i) {
        if (read_file(argv[first + i], i)) {
            return 2;
        }
    }
    if (strcmp(argv[1], "decode") == 0) {
        return cmd_decode((uint32_t)strtoul(argv[2], NULL, 10), n_files);
    }
    if (strcmp(argv[1], "fuzz") == 0) {
        return cmd_fuzz((uint32_t)strtoul(argv[2], NULL, 10), strtol(argv[3], NULL, 10), n_files);
    }
    return 2;
}
