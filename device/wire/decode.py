"""Decoding: never raises anything but :class:`CodecError` (or a subclass)."""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from tinyfleet.device.wire.errors import (
    BadCrcError,
    BadMagicError,
    BadMessageTypeError,
    CodecError,
    MalformedError,
    OversizedError,
    TruncatedError,
    UnsupportedVersionError,
)
from tinyfleet.device.wire.types import (
    _ARRAY_HEAD,
    _CHUNK_PREFIX,
    _FIELD_HEAD,
    _HEADER,
    ARRAY_FLAG_SPARSE,
    DEFAULT_MAX_MESSAGE_BYTES,
    HEADER_SIZE,
    MAGIC,
    MAX_ARRAYS,
    MAX_DEVICE_ID,
    MAX_FIELDS,
    MAX_KEY,
    MAX_NDIM,
    MAX_STRING,
    PROTOCOL_VERSION,
    Chunk,
    DType,
    FieldType,
    FieldValue,
    MessageType,
    WireArray,
    WireMessage,
    pad4,
)


@dataclass(frozen=True)
class Header:
    """The fixed 32-byte header (already checked: magic, version, type, lengths, CRC)."""

    msg_type: MessageType
    round: int
    msg_id: int
    device_id: str
    n_fields: int
    n_arrays: int
    body_len: int


class _Reader:
    """Bounds-checked little-endian reader over the body; every overrun is Malformed."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise MalformedError(f"{what} runs past the end of the message")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.end:
            raise MalformedError(f"{what} runs past the end of the message")
        self.pos += n

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))

    def pad(self, n: int, what: str) -> None:
        if any(self.take(pad4(n), what)):
            raise MalformedError(f"non-zero padding after {what}")

    def text(self, n: int, what: str) -> str:
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedError(f"{what} is not valid UTF-8") from error


def _as_bytes(payload: bytes) -> bytes:
    """The payload as immutable bytes (``bytes`` itself is not copied)."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise CodecError(f"payload must be bytes, got {type(payload).__name__}")
    return payload if type(payload) is bytes else bytes(payload)


def _check_header(payload: bytes, max_message_bytes: int) -> tuple[Header, int]:
    payload = _as_bytes(payload)
    if len(payload) < HEADER_SIZE:
        raise TruncatedError(f"{len(payload)} bytes is shorter than the 32-byte header")
    (
        magic,
        version,
        mtype,
        flags,
        rnd,
        msg_id,
        body_len,
        dev_len,
        n_fields,
        n_arrays,
        reserved,
        reserved2,
        crc,
    ) = _HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise BadMagicError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(
            f"protocol version {version} not supported (this codec speaks {PROTOCOL_VERSION})"
        )
    if mtype not in MessageType._value2member_map_:
        raise BadMessageTypeError(f"unknown message type {mtype}")
    if HEADER_SIZE + body_len > max_message_bytes:
        raise OversizedError(
            f"message of {HEADER_SIZE + body_len} bytes exceeds the limit of {max_message_bytes}"
        )
    if len(payload) < HEADER_SIZE + body_len:
        raise TruncatedError(f"header promises {body_len} body bytes, got {len(payload) - 32}")
    if len(payload) > HEADER_SIZE + body_len:
        raise MalformedError(f"{len(payload) - 32 - body_len} trailing bytes after the body")
    if zlib.crc32(payload[HEADER_SIZE:], zlib.crc32(payload[:28])) != crc:
        raise BadCrcError("CRC32 mismatch: payload corrupted")
    if flags != 0 or reserved != 0 or reserved2 != 0:
        raise MalformedError("flags and reserved header bytes must be zero in version 1")
    if not 1 <= dev_len <= MAX_DEVICE_ID:
        raise MalformedError(f"device id length {dev_len} not in 1..{MAX_DEVICE_ID}")
    if n_fields > MAX_FIELDS or n_arrays > MAX_ARRAYS:
        raise MalformedError(f"{n_fields} fields / {n_arrays} arrays exceed the limits")
    if mtype == MessageType.CHUNK and (n_fields or n_arrays):
        raise MalformedError("a CHUNK message has no fields or arrays")
    reader = _Reader(payload, HEADER_SIZE, HEADER_SIZE + body_len)
    device_id = reader.text(dev_len, "device id")
    reader.pad(dev_len, "device id")
    head = Header(MessageType(mtype), rnd, msg_id, device_id, n_fields, n_arrays, body_len)
    return head, reader.pos


def peek_header(payload: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Header:
    """Check and return the header (magic, version, type, size, CRC, device id)."""
    return _check_header(payload, max_message_bytes)[0]


def _decode_field(r: _Reader) -> tuple[str, FieldValue]:
    key_len, ftype, value_len = r.unpack(_FIELD_HEAD, "field header")
    if not 1 <= key_len <= MAX_KEY:
        raise MalformedError(f"field key length {key_len} not in 1..{MAX_KEY}")
    key = r.text(key_len, "field key")
    value: FieldValue
    if ftype in (FieldType.INT64, FieldType.FLOAT64):
        if value_len != 8:
            raise MalformedError(f"field {key!r}: 8-byte value expected, got {value_len}")
        raw = r.take(8, "field value")
        value = struct.unpack("<q" if ftype == FieldType.INT64 else "<d", raw)[0]
    elif ftype == FieldType.BOOL:
        raw = r.take(value_len, "field value")
        if value_len != 1 or raw[0] > 1:
            raise MalformedError(f"field {key!r}: a bool is one byte, 0 or 1")
        value = bool(raw[0])
    elif ftype == FieldType.STRING:
        if value_len > MAX_STRING:
            raise MalformedError(f"field {key!r}: string of {value_len} bytes > {MAX_STRING}")
        value = r.text(value_len, "field string")
    else:
        raise MalformedError(f"field {key!r}: unknown type {ftype}")
    r.pad(_FIELD_HEAD.size + key_len + value_len, "field")
    return key, value


def _decode_array(r: _Reader) -> WireArray:
    name_len, dtype, flags, ndim = r.unpack(_ARRAY_HEAD, "array header")
    if not 1 <= name_len <= MAX_KEY:
        raise MalformedError(f"array name length {name_len} not in 1..{MAX_KEY}")
    if dtype not in DType._value2member_map_:
        raise MalformedError(f"unknown array dtype {dtype}")
    if flags & ~ARRAY_FLAG_SPARSE:
        raise MalformedError(f"unknown array flags 0x{flags:02x}")
    if ndim > MAX_NDIM:
        raise MalformedError(f"array has {ndim} dimensions; at most {MAX_NDIM}")
    shape = struct.unpack(f"<{ndim}I", r.take(4 * ndim, "array shape"))
    size = math.prod(shape)
    scale, zero_point = 1.0, 0
    if dtype == DType.INT8:
        scale, zero_point = struct.unpack("<fi", r.take(8, "int8 scale/zero point"))
        if not -128 <= zero_point <= 127:
            raise MalformedError(f"int8 zero point {zero_point} out of range")
        if not (math.isfinite(scale) and scale > 0):
            raise MalformedError(f"int8 scale {scale} must be finite and > 0")
    sparse = bool(flags & ARRAY_FLAG_SPARSE)
    count = size
    if sparse:
        (count,) = struct.unpack("<I", r.take(4, "sparse count"))
        if count > size:
            raise MalformedError(f"sparse array has {count} entries for {size} elements")
    name = r.text(name_len, "array name")
    r.pad(
        4 + 4 * ndim + (8 if dtype == DType.INT8 else 0) + (4 if sparse else 0) + name_len,
        "array header",
    )
    indices = None
    if sparse:
        indices = np.frombuffer(r.take(4 * count, "sparse indices"), dtype="<u4").astype(np.uint32)
        if count and (np.any(np.diff(indices.astype(np.int64)) <= 0) or int(indices[-1]) >= size):
            raise MalformedError("sparse indices must strictly increase and be < size")
        indices.setflags(write=False)
    item = 4 if dtype == DType.FLOAT32 else 1
    start = r.pos
    r.skip(item * count, "array data")
    r.pad(item * count, "array data")
    # A read-only view into the payload, no copy (the payload is immutable bytes); only
    # a big-endian host converts ("<f4" is then not the native float32).
    values = np.frombuffer(
        r.data, dtype="<f4" if item == 4 else "i1", count=count, offset=start
    ).astype(np.float32 if item == 4 else np.int8, copy=False)
    values.setflags(write=False)
    return WireArray(name, tuple(shape), DType(dtype), values, float(scale), zero_point, indices)


def decode(
    payload: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> WireMessage | Chunk:
    """Decode one MQTT payload: a :class:`WireMessage` or a :class:`Chunk`.

    Raises
    ------
    CodecError
        (a subclass naming the problem) for anything that is not a valid message.
    """
    payload = _as_bytes(payload)
    head, pos = _check_header(payload, max_message_bytes)
    r = _Reader(payload, pos, HEADER_SIZE + head.body_len)
    if head.msg_type == MessageType.CHUNK:
        index, count, total_len, offset = r.unpack(_CHUNK_PREFIX, "chunk prefix")
        data = r.take(r.end - r.pos, "chunk data")
        if not (index < count and count >= 1 and len(data) >= 1):
            raise MalformedError(f"chunk {index}/{count} with {len(data)} bytes is invalid")
        if offset + len(data) > total_len or total_len < HEADER_SIZE:
            raise MalformedError("chunk data runs past the announced total length")
        if total_len > max_message_bytes:
            raise OversizedError(
                f"chunked message of {total_len} bytes exceeds the limit of {max_message_bytes}"
            )
        return Chunk(head.round, head.msg_id, head.device_id, index, count, total_len, offset, data)
    fields = [_decode_field(r) for _ in range(head.n_fields)]
    if len({k for k, _ in fields}) != len(fields):
        raise MalformedError("duplicate field key")
    arrays = [_decode_array(r) for _ in range(head.n_arrays)]
    if len({a.name for a in arrays}) != len(arrays):
        raise MalformedError("duplicate array name")
    if r.pos != r.end:
        raise MalformedError(f"{r.end - r.pos} unparsed bytes at the end of the body")
    return WireMessage(
        head.msg_type, head.round, head.msg_id, head.device_id, tuple(fields), tuple(arrays)
    )


def decode_message(
    payload: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> WireMessage:
    """Decode a payload that must be a whole (non-chunk) message."""
    out = decode(payload, max_message_bytes)
    if isinstance(out, Chunk):
        raise MalformedError("expected a whole message, got a CHUNK")
    return out
