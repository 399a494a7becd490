/* COBS + CRC-16 framing; see tinyfleet_framing.h. */
#include "tinyfleet_framing.h"

uint16_t tinyfleet_crc16_ccitt(const uint8_t *data, size_t len, uint16_t crc)
{
    for (size_t i = 0; i < len; ++i) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

size_t tinyfleet_frame_max_encoded(size_t payload_len)
{
    const size_t body = payload_len + 2;
    return body + body / 254 + 1 + 1;
}

/* COBS over two concatenated segments (payload, then the CRC bytes). */
static tinyfleet_status tinyfleet_cobs_encode2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                                 uint8_t *out, size_t cap, size_t *out_len)
{
    const size_t total = a_len + b_len;
    size_t code_at = 0;
    size_t w = 1;
    uint8_t code = 1;
    if (cap < 1) {
        return TINYFLEET_ERR_BUFFER;
    }
    for (size_t i = 0; i < total; ++i) {
        const uint8_t byte = i < a_len ? a[i] : b[i - a_len];
        if (byte == 0) {
            out[code_at] = code;
            code = 1;
            code_at = w++;
            if (code_at >= cap) {
                return TINYFLEET_ERR_BUFFER;
            }
            continue;
        }
        if (w >= cap) {
            return TINYFLEET_ERR_BUFFER;
        }
        out[w++] = byte;
        if (++code == 0xFF) {
            out[code_at] = code;
            code = 1;
            code_at = w++;
            if (code_at >= cap) {
                return TINYFLEET_ERR_BUFFER;
            }
        }
    }
    out[code_at] = code;
    *out_len = w;
    return TINYFLEET_OK;
}

tinyfleet_status tinyfleet_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                         size_t *out_len)
{
    if ((!in && len) || !out || !out_len) {
        return TINYFLEET_ERR_NULL;
    }
    return tinyfleet_cobs_encode2(in, len, NULL, 0, out, cap, out_len);
}

tinyfleet_status tinyfleet_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                         size_t *out_len)
{
    if ((!in && len) || !out_len || (!out && cap)) {
        return TINYFLEET_ERR_NULL;
    }
    size_t r = 0;
    size_t w = 0;
    while (r < len) {
        const uint8_t code = in[r++];
        if (code == 0) {
            return TINYFLEET_ERR_CORRUPT;
        }
        for (uint8_t i = 1; i < code; ++i) {
            if (r >= len) {
                return TINYFLEET_ERR_TRUNCATED;
            }
            if (in[r] == 0) {
                return TINYFLEET_ERR_CORRUPT;
            }
            if (w >= cap) {
                return TINYFLEET_ERR_BUFFER;
            }
            out[w++] = in[r++];
        }
        if (code != 0xFF && r < len) {
            if (w >= cap) {
                return TINYFLEET_ERR_BUFFER;
            }
            out[w++] = 0;
        }
    }
    *out_len = w;
    return TINYFLEET_OK;
}

tinyfleet_status tinyfleet_frame_encode(const uint8_t *payload, size_t len, uint8_t *out, size_t cap,
                          size_t *out_len)
{
    if ((!payload && len) || !out || !out_len) {
        return TINYFLEET_ERR_NULL;
    }
    const uint16_t crc = tinyfleet_crc16_ccitt(payload, len, 0xFFFFu);
    const uint8_t crc_bytes[2] = {(uint8_t)(crc >> 8), (uint8_t)(crc & 0xFFu)};
    size_t n = 0;
    tinyfleet_status st = tinyfleet_cobs_encode2(payload, len, crc_bytes, 2, out, cap, &n);
    if (st != TINYFLEET_OK) {
        return st;
    }
    if (n >= cap) {
        return TINYFLEET_ERR_BUFFER;
    }
    out[n++] = 0;
    *out_len = n;
    return TINYFLEET_OK;
}

tinyfleet_status tinyfleet_frame_decode(const uint8_t *frame, size_t len, uint8_t *payload, size_t cap,
                          size_t *payload_len)
{
    if ((!frame && len) || !payload || !payload_len) {
        return TINYFLEET_ERR_NULL;
    }
    size_t n = 0;
    tinyfleet_status st = tinyfleet_cobs_decode(frame, len, payload, cap, &n);
    if (st != TINYFLEET_OK) {
        return st;
    }
    if (n < 2) {
        return TINYFLEET_ERR_TRUNCATED;
    }
    const uint16_t want = (uint16_t)(((uint16_t)payload[n - 2] << 8) | payload[n - 1]);
    if (tinyfleet_crc16_ccitt(payload, n - 2, 0xFFFFu) != want) {
        return TINYFLEET_ERR_CORRUPT;
    }
    *payload_len = n - 2;
    return TINYFLEET_OK;
}

void tinyfleet_frame_rx_init(tinyfleet_frame_rx *rx, uint8_t *buf, size_t cap)
{
    rx->buf = buf;
    rx->cap = cap;
    rx->len = 0;
    rx->overflow = 0;
}

tinyfleet_status tinyfleet_frame_rx_push(tinyfleet_frame_rx *rx, uint8_t byte, size_t *payload_len)
{
    if (!rx || !rx->buf || !payload_len) {
        return TINYFLEET_ERR_NULL;
    }
    if (byte != 0) {
        if (rx->len < rx->cap) {
            rx->buf[rx->len++] = byte;
        } else {
            rx->overflow = 1;
        }
        return TINYFLEET_ERR_TRUNCATED;
    }
    const size_t len = rx->len;
    const int overflow = rx->overflow;
    rx->len = 0;
    rx->overflow = 0;
    if (overflow) {
        return TINYFLEET_ERR_BUFFER;
    }
    if (len == 0) {
        return TINYFLEET_ERR_TRUNCATED; /* back-to-back delimiters: nothing to decode */
    }
    /* COBS decodes in place: the write index never passes the read index. */
    return tinyfleet_frame_decode(rx->buf, len, rx->buf, rx->cap, payload_len);
}
