/* tinyfleet firmware: framing for the serial link.
 *
 * frame = COBS(payload || CRC-16/CCITT-FALSE(payload), big-endian) || 0x00
 * CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor
 * (Python: binascii.crc_hqx(payload, 0xFFFF)). COBS removes every 0x00 from the
 * body so 0x00 delimits frames and a receiver resynchronises after line noise.
 */
#ifndef TINYFLEET_FRAMING_H
#define TINYFLEET_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "tinyfleet_status.h"

#ifdef __cplusplus
extern "C" {
#endif

uint16_t tinyfleet_crc16_ccitt(const uint8_t *data, size_t len, uint16_t crc);

/* Bytes tinyfleet_frame_encode writes at most for a payload of `payload_len` bytes. */
size_t tinyfleet_frame_max_encoded(size_t payload_len);

tinyfleet_status tinyfleet_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                         size_t *out_len);
tinyfleet_status tinyfleet_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                         size_t *out_len);

/* Encode a payload as one frame, trailing 0x00 included. */
tinyfleet_status tinyfleet_frame_encode(const uint8_t *payload, size_t len, uint8_t *out, size_t cap,
                          size_t *out_len);
/* Decode one frame body (the bytes before the 0x00 delimiter); checks the CRC. */
tinyfleet_status tinyfleet_frame_decode(const uint8_t *frame, size_t len, uint8_t *payload, size_t cap,
                          size_t *payload_len);

/* Byte-at-a-time receiver over a caller-owned buffer. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow; /* the current frame outgrew buf: it is dropped at the next 0x00 */
} tinyfleet_frame_rx;

void tinyfleet_frame_rx_init(tinyfleet_frame_rx *rx, uint8_t *buf, size_t cap);
/* Feed one byte. Returns TINYFLEET_OK with *payload_len set when a valid frame ended
 * (payload decoded in place at rx->buf), TINYFLEET_ERR_TRUNCATED while a frame is still
 * incomplete, or an error for a frame that ended bad (then reception restarts). */
tinyfleet_status tinyfleet_frame_rx_push(tinyfleet_frame_rx *rx, uint8_t byte, size_t *payload_len);

#ifdef __cplusplus
}
#endif
#endif
