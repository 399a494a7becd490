/* tinyfleet firmware: the one error enum every tinyfleet_ function returns. */
#ifndef TINYFLEET_STATUS_H
#define TINYFLEET_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYFLEET_OK = 0,
    TINYFLEET_ERR_NULL = 1,        /* a required pointer was NULL */
    TINYFLEET_ERR_SHAPE = 2,       /* sizes or shapes do not fit together */
    TINYFLEET_ERR_RANGE = 3,       /* a value (label, index, option) is out of range */
    TINYFLEET_ERR_BUFFER = 4,      /* caller's buffer is too small */
    TINYFLEET_ERR_TRUNCATED = 5,   /* input ended before the message did */
    TINYFLEET_ERR_CORRUPT = 6,     /* malformed input: bad framing, CRC, magic, version */
    TINYFLEET_ERR_UNSUPPORTED = 7, /* valid but not handled by this build */
    TINYFLEET_ERR_IO = 8,          /* the port failed to read or write */
    /* Wire protocol errors (docs/protocol.md, section 4); truncated is TINYFLEET_ERR_TRUNCATED. */
    TINYFLEET_ERR_BAD_MAGIC = 9,
    TINYFLEET_ERR_UNSUPPORTED_VERSION = 10,
    TINYFLEET_ERR_BAD_MESSAGE_TYPE = 11,
    TINYFLEET_ERR_OVERSIZED = 12,
    TINYFLEET_ERR_BAD_CRC = 13,
    TINYFLEET_ERR_MALFORMED = 14,
    TINYFLEET_ERR_CHUNK = 15
} tinyfleet_status;

/* A static, human-readable name for a status ("TINYFLEET_OK", ...). */
const char *tinyfleet_status_name(tinyfleet_status status);

#ifdef __cplusplus
}
#endif
#endif
