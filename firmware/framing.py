"""COBS + CRC-16 framing for the serial link (the Python twin of ``tinyfleet_framing.c``).

``frame = COBS(payload || crc16_be(payload)) || 0x00`` with CRC-16/CCITT-FALSE
(``binascii.crc_hqx(payload, 0xFFFF)``).
"""

from __future__ import annotations

import binascii

from tinyfleet.errors import TinyfleetError


class FrameError(TinyfleetError):
    """A frame failed COBS decoding or its CRC."""


def cobs_encode(data: bytes) -> bytes:
    out = bytearray([0])
    code_at, code = 0, 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0:
            raise FrameError("zero byte inside a COBS frame")
        block = data[i : i + code - 1]
        if len(block) != code - 1 or 0 in block:
            raise FrameError("truncated or corrupt COBS block")
        out += block
        i += code - 1
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    crc = binascii.crc_hqx(payload, 0xFFFF)
    return cobs_encode(payload + crc.to_bytes(2, "big")) + b"\x00"


def decode_frame(body: bytes) -> bytes:
    """Decode a frame body (without its 0x00 delimiter) and check the CRC."""
    raw = cobs_decode(body)
    if len(raw) < 2:
        raise FrameError("frame shorter than its CRC")
    payload, crc = raw[:-2], int.from_bytes(raw[-2:], "big")
    if binascii.crc_hqx(payload, 0xFFFF) != crc:
        raise FrameError("frame CRC mismatch")
    return payload
