/* tinyfleet firmware: the MQTT wire codec, version 1 (docs/protocol.md).
 *
 * Decoding allocates nothing: a tinyfleet_wire_message holds views (pointers + lengths)
 * into the caller's buffer, and every length is checked before use, in the order of
 * docs/protocol.md section 4, so the first failing check names the error.
 * Encoding is deterministic (zero padding), so decode -> encode reproduces the bytes.
 */
#ifndef TINYFLEET_CODEC_H
#define TINYFLEET_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "tinyfleet_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TINYFLEET_WIRE_HEADER_BYTES 32u
#define TINYFLEET_WIRE_VERSION 1u
#define TINYFLEET_WIRE_MAX_DEVICE_ID 64u
#define TINYFLEET_WIRE_MAX_FIELDS 16u
#define TINYFLEET_WIRE_MAX_KEY 32u
#define TINYFLEET_WIRE_MAX_STRING 64u
#define TINYFLEET_WIRE_MAX_ARRAYS 8u
#define TINYFLEET_WIRE_MAX_NDIM 4u
#define TINYFLEET_WIRE_CHUNK_PREFIX 12u

typedef enum {
    TINYFLEET_MSG_TRAIN = 1,
    TINYFLEET_MSG_EVALUATE = 2,
    TINYFLEET_MSG_REPLY = 3,
    TINYFLEET_MSG_CHUNK = 4,
    TINYFLEET_MSG_ERROR = 5
} tinyfleet_msg_type;

typedef enum { TINYFLEET_FIELD_INT64 = 1, TINYFLEET_FIELD_FLOAT64 = 2, TINYFLEET_FIELD_BOOL = 3, TINYFLEET_FIELD_STRING = 4 } tinyfleet_field_type;
typedef enum { TINYFLEET_DTYPE_FLOAT32 = 1, TINYFLEET_DTYPE_INT8 = 2 } tinyfleet_wire_dtype;

typedef struct {
    const uint8_t *key;
    uint8_t key_len;
    uint8_t type;       /* tinyfleet_field_type */
    uint16_t value_len;
    const uint8_t *value; /* little-endian bytes; use the accessors below */
} tinyfleet_wire_field;

typedef struct {
    const uint8_t *name;
    uint8_t name_len;
    uint8_t dtype;  /* tinyfleet_wire_dtype */
    uint8_t sparse; /* 0 or 1 */
    uint8_t ndim;
    uint32_t dims[TINYFLEET_WIRE_MAX_NDIM];
    uint64_t size;  /* product of dims (saturates at UINT64_MAX) */
    float scale;    /* INT8 only (1.0 otherwise) */
    int32_t zero_point;
    uint32_t count; /* stored values: size (dense) or nnz (sparse) */
    const uint8_t *indices; /* sparse: count little-endian u32 */
    const uint8_t *values;  /* count float32 (LE) or int8 */
} tinyfleet_wire_array;

typedef struct {
    uint8_t type; /* tinyfleet_msg_type */
    uint32_t round;
    uint32_t msg_id;
    const uint8_t *device_id;
    uint8_t device_len;
    uint8_t n_fields;
    uint8_t n_arrays;
    tinyfleet_wire_field fields[TINYFLEET_WIRE_MAX_FIELDS];
    tinyfleet_wire_array arrays[TINYFLEET_WIRE_MAX_ARRAYS];
    /* CHUNK only */
    uint16_t chunk_index;
    uint16_t chunk_count;
    uint32_t total_len;
    uint32_t offset;
    const uint8_t *chunk_data;
    uint32_t chunk_len;
} tinyfleet_wire_message;

uint32_t tinyfleet_crc32(const uint8_t *data, size_t len, uint32_t crc); /* zlib.crc32 */

/* Decode one MQTT payload (a message or one CHUNK). */
tinyfleet_status tinyfleet_wire_decode(const uint8_t *buf, size_t len, uint32_t max_message_bytes,
                         tinyfleet_wire_message *msg);

/* Encode a (non-CHUNK) message from views; returns TINYFLEET_ERR_BUFFER if cap is short. */
tinyfleet_status tinyfleet_wire_encode(const tinyfleet_wire_message *msg, uint8_t *out, size_t cap, size_t *out_len);

/* Field and array accessors. */
int64_t tinyfleet_wire_field_int64(const tinyfleet_wire_field *f);
double tinyfleet_wire_field_float64(const tinyfleet_wire_field *f);
uint32_t tinyfleet_wire_array_index(const tinyfleet_wire_array *a, uint32_t i);
/* Stored value i as float (int8 dequantised: (float)(q - zp) * scale). */
float tinyfleet_wire_array_value(const tinyfleet_wire_array *a, uint32_t i);
/* Dense float32 of the whole array into out[a->size]; TINYFLEET_ERR_BUFFER if cap < size. */
tinyfleet_status tinyfleet_wire_array_dense(const tinyfleet_wire_array *a, float *out, uint32_t cap);

/* Reassembly of one chunked message at a time (a device has one task in flight).
 * A chunk of another (device id, msg_id) restarts reassembly. */
typedef struct {
    uint16_t index;
    uint32_t offset, length;
} tinyfleet_wire_span;

typedef struct {
    uint8_t *buf;          /* caller-owned, max_message_bytes */
    uint32_t max_message_bytes;
    tinyfleet_wire_span *spans;   /* caller-owned table of max_chunks entries */
    uint16_t max_chunks;
    /* state */
    int active;
    uint8_t device_id[TINYFLEET_WIRE_MAX_DEVICE_ID];
    uint8_t device_len;
    uint32_t msg_id;
    uint16_t count;
    uint32_t total_len;
    uint16_t seen;
} tinyfleet_wire_assembler;

void tinyfleet_wire_assembler_init(tinyfleet_wire_assembler *as, uint8_t *buf, uint32_t max_message_bytes,
                            tinyfleet_wire_span *spans, uint16_t max_chunks);
/* Feed one payload. TINYFLEET_OK with *complete = 1: `msg` is a whole message (views into
 * `payload` or into as->buf). TINYFLEET_OK with *complete = 0: a chunk was stored. */
tinyfleet_status tinyfleet_wire_assembler_add(tinyfleet_wire_assembler *as, const uint8_t *payload, size_t len,
                                tinyfleet_wire_message *msg, int *complete);

/* The protocol's error code name ("truncated", "bad_crc", ...) for a status. */
const char *tinyfleet_wire_error_code(tinyfleet_status status);

#ifdef __cplusplus
}
#endif
#endif
