/* tinyfleet firmware: the port interface. Everything board-specific (serial I/O,
 * time, logging) sits behind these function pointers, so the library itself is
 * plain C99 without any OS or HAL. */
#ifndef TINYFLEET_PORT_H
#define TINYFLEET_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "tinyfleet_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    void *ctx; /* passed back to every callback */
    /* Write all `len` bytes to the serial link. */
    tinyfleet_status (*write)(void *ctx, const uint8_t *data, size_t len);
    /* Read up to `cap` bytes without blocking longer than the port's poll time;
     * *got receives the count (0 when nothing arrived). */
    tinyfleet_status (*read)(void *ctx, uint8_t *data, size_t cap, size_t *got);
    /* Monotonic milliseconds (wraps). */
    uint32_t (*millis)(void *ctx);
    /* Optional human-readable log line; may be NULL. */
    void (*log)(void *ctx, const char *line);
} tinyfleet_port;

#ifdef __cplusplus
}
#endif
#endif
