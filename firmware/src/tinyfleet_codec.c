/* The MQTT wire codec, version 1; see tinyfleet_codec.h and docs/protocol.md. */
#include "tinyfleet_codec.h"

#include <math.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t pad4(uint32_t n) { return (4u - (n & 3u)) & 3u; }

uint32_t tinyfleet_crc32(const uint8_t *data, size_t len, uint32_t crc)
{
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

/* Strict UTF-8 as Python decodes it: no overlongs, no surrogates, <= U+10FFFF. */
static int valid_utf8(const uint8_t *s, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        uint32_t extra;
        uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (n - i <= extra) {
            return 0;
        }
        for (uint32_t k = 1; k <= extra; ++k) {
            if ((s[i + k] & 0xC0u) != 0x80u) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((extra == 2 && cp < 0x800u) || (extra == 3 && cp < 0x10000u) || cp > 0x10FFFFu ||
            (cp >= 0xD800u && cp <= 0xDFFFu)) {
            return 0;
        }
        i += extra + 1;
    }
    return 1;
}

/* Bounded reader over [pos, end) of the message. */
typedef struct {
    const uint8_t *buf;
    uint32_t pos, end;
} reader;

static const uint8_t *take(reader *r, uint64_t n)
{
    if (n > (uint64_t)(r->end - r->pos)) {
        return NULL;
    }
    const uint8_t *p = r->buf + r->pos;
    r->pos += (uint32_t)n;
    return p;
}

/* Zero padding after `n` bytes of an item. */
static int take_pad(reader *r, uint32_t n)
{
    const uint8_t *p = take(r, pad4(n));
    if (!p) {
        return 0;
    }
    for (uint32_t i = 0; i < pad4(n); ++i) {
        if (p[i]) {
            return 0;
        }
    }
    return 1;
}

static tinyfleet_status decode_field(reader *r, tinyfleet_wire_field *f)
{
    const uint8_t *h = take(r, 4);
    if (!h) {
        return TINYFLEET_ERR_MALFORMED;
    }
    f->key_len = h[0];
    f->type = h[1];
    f->value_len = rd16(h + 2);
    if (f->key_len < 1 || f->key_len > TINYFLEET_WIRE_MAX_KEY) {
        return TINYFLEET_ERR_MALFORMED;
    }
    f->key = take(r, f->key_len);
    if (!f->key || !valid_utf8(f->key, f->key_len)) {
        return TINYFLEET_ERR_MALFORMED;
    }
    switch (f->type) {
    case TINYFLEET_FIELD_INT64:
    case TINYFLEET_FIELD_FLOAT64:
        if (f->value_len != 8) {
            return TINYFLEET_ERR_MALFORMED;
        }
        break;
    case TINYFLEET_FIELD_BOOL:
        if (f->value_len != 1) {
            return TINYFLEET_ERR_MALFORMED;
        }
        break;
    case TINYFLEET_FIELD_STRING:
        if (f->value_len > TINYFLEET_WIRE_MAX_STRING) {
            return TINYFLEET_ERR_MALFORMED;
        }
        break;
    default:
        return TINYFLEET_ERR_MALFORMED;
    }
    f->value = take(r, f->value_len);
    if (!f->value) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (f->type == TINYFLEET_FIELD_BOOL && f->value[0] > 1) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (f->type == TINYFLEET_FIELD_STRING && !valid_utf8(f->value, f->value_len)) {
        return TINYFLEET_ERR_MALFORMED;
    }
    return take_pad(r, 4u + f->key_len + f->value_len) ? TINYFLEET_OK : TINYFLEET_ERR_MALFORMED;
}

static tinyfleet_status decode_array(reader *r, tinyfleet_wire_array *a)
{
    const uint8_t *h = take(r, 4);
    if (!h) {
        return TINYFLEET_ERR_MALFORMED;
    }
    a->name_len = h[0];
    a->dtype = h[1];
    const uint8_t flags = h[2];
    a->ndim = h[3];
    if (a->name_len < 1 || a->name_len > TINYFLEET_WIRE_MAX_KEY) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (a->dtype != TINYFLEET_DTYPE_FLOAT32 && a->dtype != TINYFLEET_DTYPE_INT8) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (flags & ~1u) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (a->ndim > TINYFLEET_WIRE_MAX_NDIM) {
        return TINYFLEET_ERR_MALFORMED;
    }
    a->sparse = flags & 1u;
    const uint8_t *d = take(r, 4u * a->ndim);
    if (!d) {
        return TINYFLEET_ERR_MALFORMED;
    }
    a->size = 1;
    for (uint8_t i = 0; i < a->ndim; ++i) {
        a->dims[i] = rd32(d + 4 * i);
    }
    for (uint8_t i = 0; i < a->ndim; ++i) {
        if (a->dims[i] == 0) {
            a->size = 0;
            break;
        }
        a->size = a->size > UINT64_MAX / a->dims[i] ? UINT64_MAX : a->size * a->dims[i];
    }
    a->scale = 1.0f;
    a->zero_point = 0;
    uint32_t head_len = 4u + 4u * a->ndim;
    if (a->dtype == TINYFLEET_DTYPE_INT8) {
        const uint8_t *q = take(r, 8);
        if (!q) {
            return TINYFLEET_ERR_MALFORMED;
        }
        uint32_t bits = rd32(q);
        memcpy(&a->scale, &bits, 4);
        a->zero_point = (int32_t)rd32(q + 4);
        if (a->zero_point < -128 || a->zero_point > 127) {
            return TINYFLEET_ERR_MALFORMED;
        }
        if (!isfinite(a->scale) || !(a->scale > 0.0f)) {
            return TINYFLEET_ERR_MALFORMED;
        }
        head_len += 8;
    }
    uint64_t count = a->size;
    if (a->sparse) {
        const uint8_t *c = take(r, 4);
        if (!c) {
            return TINYFLEET_ERR_MALFORMED;
        }
        count = rd32(c);
        if (count > a->size) {
            return TINYFLEET_ERR_MALFORMED;
        }
        head_len += 4;
    }
    a->name = take(r, a->name_len);
    if (!a->name || !valid_utf8(a->name, a->name_len)) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (!take_pad(r, head_len + a->name_len)) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (count > 0xFFFFFFFFu) {
        return TINYFLEET_ERR_MALFORMED; /* cannot fit in any message */
    }
    a->count = (uint32_t)count;
    a->indices = NULL;
    if (a->sparse) {
        a->indices = take(r, 4ull * a->count);
        if (!a->indices) {
            return TINYFLEET_ERR_MALFORMED;
        }
        for (uint32_t i = 0; i < a->count; ++i) {
            const uint32_t idx = rd32(a->indices + 4ull * i);
            if ((uint64_t)idx >= a->size || (i > 0 && idx <= rd32(a->indices + 4ull * (i - 1)))) {
                return TINYFLEET_ERR_MALFORMED;
            }
        }
    }
    const uint32_t item = a->dtype == TINYFLEET_DTYPE_FLOAT32 ? 4u : 1u;
    a->values = take(r, (uint64_t)item * a->count);
    if (!a->values) {
        return TINYFLEET_ERR_MALFORMED;
    }
    return take_pad(r, (uint32_t)((uint64_t)item * a->count & 3u)) ? TINYFLEET_OK : TINYFLEET_ERR_MALFORMED;
}

tinyfleet_status tinyfleet_wire_decode(const uint8_t *buf, size_t len, uint32_t max_message_bytes,
                         tinyfleet_wire_message *msg)
{
    if ((!buf && len) || !msg) {
        return TINYFLEET_ERR_NULL;
    }
    if (len < TINYFLEET_WIRE_HEADER_BYTES) {
        return TINYFLEET_ERR_TRUNCATED;
    }
    if (memcmp(buf, "TFLT", 4) != 0) {
        return TINYFLEET_ERR_BAD_MAGIC;
    }
    if (buf[4] != TINYFLEET_WIRE_VERSION) {
        return TINYFLEET_ERR_UNSUPPORTED_VERSION;
    }
    if (buf[5] < TINYFLEET_MSG_TRAIN || buf[5] > TINYFLEET_MSG_ERROR) {
        return TINYFLEET_ERR_BAD_MESSAGE_TYPE;
    }
    const uint32_t body_len = rd32(buf + 16);
    if (max_message_bytes < TINYFLEET_WIRE_HEADER_BYTES ||
        body_len > max_message_bytes - TINYFLEET_WIRE_HEADER_BYTES) {
        return TINYFLEET_ERR_OVERSIZED;
    }
    if ((uint64_t)len < (uint64_t)TINYFLEET_WIRE_HEADER_BYTES + body_len) {
        return TINYFLEET_ERR_TRUNCATED;
    }
    if ((uint64_t)len > (uint64_t)TINYFLEET_WIRE_HEADER_BYTES + body_len) {
        return TINYFLEET_ERR_MALFORMED;
    }
    uint32_t crc = tinyfleet_crc32(buf, 28, 0);
    crc = tinyfleet_crc32(buf + TINYFLEET_WIRE_HEADER_BYTES, body_len, crc);
    if (crc != rd32(buf + 28)) {
        return TINYFLEET_ERR_BAD_CRC;
    }
    memset(msg, 0, sizeof *msg);
    msg->type = buf[5];
    msg->round = rd32(buf + 8);
    msg->msg_id = rd32(buf + 12);
    msg->device_len = buf[20];
    msg->n_fields = buf[21];
    msg->n_arrays = buf[22];
    if (rd16(buf + 6) != 0 || buf[23] != 0 || rd32(buf + 24) != 0) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (msg->device_len < 1 || msg->device_len > TINYFLEET_WIRE_MAX_DEVICE_ID) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (msg->n_fields > TINYFLEET_WIRE_MAX_FIELDS || msg->n_arrays > TINYFLEET_WIRE_MAX_ARRAYS) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (msg->type == TINYFLEET_MSG_CHUNK && (msg->n_fields || msg->n_arrays)) {
        return TINYFLEET_ERR_MALFORMED;
    }
    reader r = {buf, TINYFLEET_WIRE_HEADER_BYTES, TINYFLEET_WIRE_HEADER_BYTES + body_len};
    msg->device_id = take(&r, msg->device_len);
    if (!msg->device_id || !valid_utf8(msg->device_id, msg->device_len) ||
        !take_pad(&r, msg->device_len)) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (msg->type == TINYFLEET_MSG_CHUNK) {
        const uint8_t *p = take(&r, TINYFLEET_WIRE_CHUNK_PREFIX);
        if (!p) {
            return TINYFLEET_ERR_MALFORMED;
        }
        msg->chunk_index = rd16(p);
        msg->chunk_count = rd16(p + 2);
        msg->total_len = rd32(p + 4);
        msg->offset = rd32(p + 8);
        msg->chunk_len = r.end - r.pos;
        msg->chunk_data = take(&r, msg->chunk_len);
        if (!(msg->chunk_index < msg->chunk_count && msg->chunk_count >= 1 &&
              msg->chunk_len >= 1)) {
            return TINYFLEET_ERR_MALFORMED;
        }
        if ((uint64_t)msg->offset + msg->chunk_len > msg->total_len ||
            msg->total_len < TINYFLEET_WIRE_HEADER_BYTES) {
            return TINYFLEET_ERR_MALFORMED;
        }
        if (msg->total_len > max_message_bytes) {
            return TINYFLEET_ERR_OVERSIZED;
        }
        return TINYFLEET_OK;
    }
    for (uint8_t i = 0; i < msg->n_fields; ++i) {
        tinyfleet_status st = decode_field(&r, &msg->fields[i]);
        if (st != TINYFLEET_OK) {
            return st;
        }
    }
    for (uint8_t i = 0; i < msg->n_fields; ++i) {
        for (uint8_t j = 0; j < i; ++j) {
            if (msg->fields[i].key_len == msg->fields[j].key_len &&
                memcmp(msg->fields[i].key, msg->fields[j].key, msg->fields[i].key_len) == 0) {
                return TINYFLEET_ERR_MALFORMED;
            }
        }
    }
    for (uint8_t i = 0; i < msg->n_arrays; ++i) {
        tinyfleet_status st = decode_array(&r, &msg->arrays[i]);
        if (st != TINYFLEET_OK) {
            return st;
        }
    }
    for (uint8_t i = 0; i < msg->n_arrays; ++i) {
        for (uint8_t j = 0; j < i; ++j) {
            if (msg->arrays[i].name_len == msg->arrays[j].name_len &&
                memcmp(msg->arrays[i].name, msg->arrays[j].name, msg->arrays[i].name_len) == 0) {
                return TINYFLEET_ERR_MALFORMED;
            }
        }
    }
    return r.pos == r.end ? TINYFLEET_OK : TINYFLEET_ERR_MALFORMED;
}

/* Bounded writer. */
typedef struct {
    uint8_t *buf;
    size_t pos, cap;
    int overflow;
} writer;

static uint8_t *put(writer *w, size_t n)
{
    if (w->overflow || n > w->cap - w->pos) {
        w->overflow = 1;
        return NULL;
    }
    uint8_t *p = w->buf + w->pos;
    memset(p, 0, n);
    w->pos += n;
    return p;
}

static void put_bytes(writer *w, const uint8_t *src, size_t n)
{
    uint8_t *p = put(w, n);
    if (p && n) {
        memcpy(p, src, n);
    }
}

tinyfleet_status tinyfleet_wire_encode(const tinyfleet_wire_message *msg, uint8_t *out, size_t cap, size_t *out_len)
{
    if (!msg || !out || !out_len || (!msg->device_id && msg->device_len)) {
        return TINYFLEET_ERR_NULL;
    }
    if (msg->type < TINYFLEET_MSG_TRAIN || msg->type > TINYFLEET_MSG_ERROR || msg->type == TINYFLEET_MSG_CHUNK) {
        return TINYFLEET_ERR_RANGE;
    }
    if (msg->device_len < 1 || msg->device_len > TINYFLEET_WIRE_MAX_DEVICE_ID ||
        msg->n_fields > TINYFLEET_WIRE_MAX_FIELDS || msg->n_arrays > TINYFLEET_WIRE_MAX_ARRAYS) {
        return TINYFLEET_ERR_RANGE;
    }
    writer w = {out, 0, cap, 0};
    uint8_t *h = put(&w, TINYFLEET_WIRE_HEADER_BYTES);
    if (!h) {
        return TINYFLEET_ERR_BUFFER;
    }
    memcpy(h, "TFLT", 4);
    h[4] = TINYFLEET_WIRE_VERSION;
    h[5] = msg->type;
    wr32(h + 8, msg->round);
    wr32(h + 12, msg->msg_id);
    h[20] = msg->device_len;
    h[21] = msg->n_fields;
    h[22] = msg->n_arrays;
    put_bytes(&w, msg->device_id, msg->device_len);
    put(&w, pad4(msg->device_len));
    for (uint8_t i = 0; i < msg->n_fields; ++i) {
        const tinyfleet_wire_field *f = &msg->fields[i];
        uint8_t *fh = put(&w, 4);
        if (fh) {
            fh[0] = f->key_len;
            fh[1] = f->type;
            wr16(fh + 2, f->value_len);
        }
        put_bytes(&w, f->key, f->key_len);
        put_bytes(&w, f->value, f->value_len);
        put(&w, pad4(4u + f->key_len + f->value_len));
    }
    for (uint8_t i = 0; i < msg->n_arrays; ++i) {
        const tinyfleet_wire_array *a = &msg->arrays[i];
        if (a->ndim > TINYFLEET_WIRE_MAX_NDIM) {
            return TINYFLEET_ERR_RANGE;
        }
        uint8_t *ah = put(&w, 4u + 4u * a->ndim);
        uint32_t head_len = 4u + 4u * a->ndim;
        if (ah) {
            ah[0] = a->name_len;
            ah[1] = a->dtype;
            ah[2] = a->sparse ? 1u : 0u;
            ah[3] = a->ndim;
            for (uint8_t d = 0; d < a->ndim; ++d) {
                wr32(ah + 4 + 4 * d, a->dims[d]);
            }
        }
        if (a->dtype == TINYFLEET_DTYPE_INT8) {
            uint8_t *q = put(&w, 8);
            if (q) {
                uint32_t bits;
                memcpy(&bits, &a->scale, 4);
                wr32(q, bits);
                wr32(q + 4, (uint32_t)a->zero_point);
            }
            head_len += 8;
        }
        if (a->sparse) {
            uint8_t *c = put(&w, 4);
            if (c) {
                wr32(c, a->count);
            }
            head_len += 4;
        }
        put_bytes(&w, a->name, a->name_len);
        put(&w, pad4(head_len + a->name_len));
        if (a->sparse) {
            put_bytes(&w, a->indices, 4u * (size_t)a->count);
        }
        const size_t item = a->dtype == TINYFLEET_DTYPE_FLOAT32 ? 4u : 1u;
        put_bytes(&w, a->values, item * a->count);
        put(&w, pad4((uint32_t)(item * a->count)));
    }
    if (w.overflow) {
        return TINYFLEET_ERR_BUFFER;
    }
    wr32(out + 16, (uint32_t)(w.pos - TINYFLEET_WIRE_HEADER_BYTES));
    uint32_t crc = tinyfleet_crc32(out, 28, 0);
    crc = tinyfleet_crc32(out + TINYFLEET_WIRE_HEADER_BYTES, w.pos - TINYFLEET_WIRE_HEADER_BYTES, crc);
    wr32(out + 28, crc);
    *out_len = w.pos;
    return TINYFLEET_OK;
}

int64_t tinyfleet_wire_field_int64(const tinyfleet_wire_field *f) { return (int64_t)rd64(f->value); }

double tinyfleet_wire_field_float64(const tinyfleet_wire_field *f)
{
    uint64_t bits = rd64(f->value);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

uint32_t tinyfleet_wire_array_index(const tinyfleet_wire_array *a, uint32_t i)
{
    return a->indices ? rd32(a->indices + 4ull * i) : i;
}

float tinyfleet_wire_array_value(const tinyfleet_wire_array *a, uint32_t i)
{
    if (a->dtype == TINYFLEET_DTYPE_FLOAT32) {
        uint32_t bits = rd32(a->values + 4ull * i);
        float v;
        memcpy(&v, &bits, 4);
        return v;
    }
    const int32_t q = (int32_t)(int8_t)a->values[i];
    return (float)(q - a->zero_point) * a->scale;
}

tinyfleet_status tinyfleet_wire_array_dense(const tinyfleet_wire_array *a, float *out, uint32_t cap)
{
    if (!a || (!out && cap)) {
        return TINYFLEET_ERR_NULL;
    }
    if (a->size > cap) {
        return TINYFLEET_ERR_BUFFER;
    }
    if (a->sparse) {
        for (uint64_t i = 0; i < a->size; ++i) {
            out[i] = 0.0f;
        }
    }
    for (uint32_t i = 0; i < a->count; ++i) {
        out[tinyfleet_wire_array_index(a, i)] = tinyfleet_wire_array_value(a, i);
    }
    return TINYFLEET_OK;
}

void tinyfleet_wire_assembler_init(tinyfleet_wire_assembler *as, uint8_t *buf, uint32_t max_message_bytes,
                            tinyfleet_wire_span *spans, uint16_t max_chunks)
{
    memset(as, 0, sizeof *as);
    as->buf = buf;
    as->max_message_bytes = max_message_bytes;
    as->spans = spans;
    as->max_chunks = max_chunks;
}

tinyfleet_status tinyfleet_wire_assembler_add(tinyfleet_wire_assembler *as, const uint8_t *payload, size_t len,
                                tinyfleet_wire_message *msg, int *complete)
{
    if (!as || !msg || !complete || !as->buf || !as->spans) {
        return TINYFLEET_ERR_NULL;
    }
    *complete = 0;
    tinyfleet_status st = tinyfleet_wire_decode(payload, len, as->max_message_bytes, msg);
    if (st != TINYFLEET_OK) {
        return st;
    }
    if (msg->type != TINYFLEET_MSG_CHUNK) {
        *complete = 1;
        return TINYFLEET_OK;
    }
    const int same = as->active && as->msg_id == msg->msg_id &&
                     as->device_len == msg->device_len &&
                     memcmp(as->device_id, msg->device_id, msg->device_len) == 0;
    if (!same) {
        if (msg->chunk_count > as->max_chunks) {
            as->active = 0;
            return TINYFLEET_ERR_OVERSIZED; /* more chunks than this device can track */
        }
        as->active = 1;
        memcpy(as->device_id, msg->device_id, msg->device_len);
        as->device_len = msg->device_len;
        as->msg_id = msg->msg_id;
        as->count = msg->chunk_count;
        as->total_len = msg->total_len;
        as->seen = 0;
    }
    if (as->count != msg->chunk_count || as->total_len != msg->total_len) {
        as->active = 0;
        return TINYFLEET_ERR_CHUNK;
    }
    for (uint16_t i = 0; i < as->seen; ++i) {
        if (as->spans[i].index == msg->chunk_index) {
            if (as->spans[i].offset != msg->offset || as->spans[i].length != msg->chunk_len) {
                as->active = 0;
                return TINYFLEET_ERR_CHUNK;
            }
            return TINYFLEET_OK; /* a redelivered chunk */
        }
    }
    memcpy(as->buf + msg->offset, msg->chunk_data, msg->chunk_len);
    as->spans[as->seen].index = msg->chunk_index;
    as->spans[as->seen].offset = msg->offset;
    as->spans[as->seen].length = msg->chunk_len;
    ++as->seen;
    if (as->seen < as->count) {
        return TINYFLEET_OK;
    }
    as->active = 0;
    /* The spans must tile [0, total_len): walk them in offset order (n^2, n small). */
    uint32_t cursor = 0;
    for (uint16_t k = 0; k < as->seen; ++k) {
        int found = 0;
        for (uint16_t i = 0; i < as->seen; ++i) {
            if (as->spans[i].offset == cursor) {
                cursor += as->spans[i].length;
                found = 1;
                break;
            }
        }
        if (!found) {
            return TINYFLEET_ERR_CHUNK;
        }
    }
    if (cursor != as->total_len) {
        return TINYFLEET_ERR_CHUNK;
    }
    const uint32_t msg_id = as->msg_id;
    uint8_t device_id[TINYFLEET_WIRE_MAX_DEVICE_ID];
    const uint8_t device_len = as->device_len;
    memcpy(device_id, as->device_id, device_len);
    st = tinyfleet_wire_decode(as->buf, as->total_len, as->max_message_bytes, msg);
    if (st != TINYFLEET_OK) {
        return st;
    }
    if (msg->type == TINYFLEET_MSG_CHUNK) {
        return TINYFLEET_ERR_MALFORMED;
    }
    if (msg->msg_id != msg_id || msg->device_len != device_len ||
        memcmp(msg->device_id, device_id, device_len) != 0) {
        return TINYFLEET_ERR_CHUNK;
    }
    *complete = 1;
    return TINYFLEET_OK;
}

const char *tinyfleet_wire_error_code(tinyfleet_status status)
{
    switch (status) {
    case TINYFLEET_OK: return "ok";
    case TINYFLEET_ERR_TRUNCATED: return "truncated";
    case TINYFLEET_ERR_BAD_MAGIC: return "bad_magic";
    case TINYFLEET_ERR_UNSUPPORTED_VERSION: return "unsupported_version";
    case TINYFLEET_ERR_BAD_MESSAGE_TYPE: return "bad_message_type";
    case TINYFLEET_ERR_OVERSIZED: return "oversized";
    case TINYFLEET_ERR_BAD_CRC: return "bad_crc";
    case TINYFLEET_ERR_MALFORMED: return "malformed";
    case TINYFLEET_ERR_CHUNK: return "chunk";
    default: return "error";
    }
}
