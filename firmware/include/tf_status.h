/* tinyfleet firmware: the one error enum every tf_ function returns. */
#ifndef TF_STATUS_H
#define TF_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TF_OK = 0,
    TF_ERR_NULL = 1,        /* a required pointer was NULL */
    TF_ERR_SHAPE = 2,       /* sizes or shapes do not fit together */
    TF_ERR_RANGE = 3,       /* a value (label, index, option) is out of range */
    TF_ERR_BUFFER = 4,      /* caller's buffer is too small */
    TF_ERR_TRUNCATED = 5,   /* input ended before the message did */
    TF_ERR_CORRUPT = 6,     /* malformed input: bad framing, CRC, magic, version */
    TF_ERR_UNSUPPORTED = 7, /* valid but not handled by this build */
    TF_ERR_IO = 8,          /* the port failed to read or write */
    /* Wire protocol errors (docs/protocol.md, section 4); truncated is TF_ERR_TRUNCATED. */
    TF_ERR_BAD_MAGIC = 9,
    TF_ERR_UNSUPPORTED_VERSION = 10,
    TF_ERR_BAD_MESSAGE_TYPE = 11,
    TF_ERR_OVERSIZED = 12,
    TF_ERR_BAD_CRC = 13,
    TF_ERR_MALFORMED = 14,
    TF_ERR_CHUNK = 15
} tf_status;

/* A static, human-readable name for a status ("TF_OK", ...). */
const char *tf_status_name(tf_status status);

#ifdef __cplusplus
}
#endif
#endif
