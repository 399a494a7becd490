/* tinyfleet firmware: framing for the serial link.
 *
 * frame = COBS(payload || CRC-16/CCITT-FALSE(payload), big-endian) || 0x00
 * CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor
 * (Python: binascii.crc_hqx(payload, 0xFFFF)). COBS removes every 0x00 from the
 * body so 0x00 delimits frames and a receiver resynchronises after line noise.
 */
#ifndef TF_FRAMING_H
#define TF_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "tf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

uint16_t tf_crc16_ccitt(const uint8_t *data, size_t len, uint16_t crc);

/* Bytes tf_frame_encode writes at most for a payload of `payload_len` bytes. */
size_t tf_frame_max_encoded(size_t payload_len);

tf_status tf_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                         size_t *out_len);
tf_status tf_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                         size_t *out_len);

/* Encode a payload as one frame, trailing 0x00 included. */
tf_status tf_frame_encode(const uint8_t *payload, size_t len, uint8_t *out, size_t cap,
                          size_t *out_len);
/* Decode one frame body (the bytes before the 0x00 delimiter); checks the CRC. */
tf_status tf_frame_decode(const uint8_t *frame, size_t len, uint8_t *payload, size_t cap,
                          size_t *payload_len);

/* Byte-at-a-time receiver over a caller-owned buffer. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow; /* the current frame outgrew buf: it is dropped at the next 0x00 */
} tf_frame_rx;

void tf_frame_rx_init(tf_frame_rx *rx, uint8_t *buf, size_t cap);
/* Feed one byte. Returns TF_OK with *payload_len set when a valid frame ended
 * (payload decoded in place at rx->buf), TF_ERR_TRUNCATED while a frame is still
 * incomplete, or an error for a frame that ended bad (then reception restarts). */
tf_status tf_frame_rx_push(tf_frame_rx *rx, uint8_t byte, size_t *payload_len);

#ifdef __cplusplus
}
#endif
#endif
