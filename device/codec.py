"""The tinyfleet wire codec: binary task/update payloads, chunks, and MQTT topic names.

This module is the single source of truth for the wire format; ``docs/protocol.md``
describes the same bytes for the C firmware, and ``device/vectors/`` holds test vectors
that both implementations must pass. Everything is little-endian and 4-byte aligned.

Decoding never raises anything but :class:`CodecError` (or a subclass): a broken,
truncated or hostile payload gives a clear error and nothing else.
"""

from __future__ import annotations

import enum
import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tinyfleet.errors import TinyfleetError

MAGIC = b"TFLT"
PROTOCOL_VERSION = 1
HEADER_SIZE = 32
CHUNK_PREFIX_SIZE = 12

# Bounds a C decoder can size its tables with (docs/protocol.md, "Limits").
MAX_DEVICE_ID = 64
MAX_ARRAYS = 8
MAX_NDIM = 4
MAX_FIELDS = 16
MAX_KEY = 32
MAX_STRING = 64
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
MAX_CHUNKS = 0xFFFF

_HEADER = struct.Struct("<4sBBHIIIBBBBII")
_FIELD_HEAD = struct.Struct("<BBH")
_ARRAY_HEAD = struct.Struct("<BBBB")
_CHUNK_PREFIX = struct.Struct("<HHII")


# -- errors -----------------------------------------------------------------------------
class CodecError(TinyfleetError):
    """A payload cannot be encoded or decoded. Every codec failure is one of these."""

    #: Stable name used in ``device/vectors/index.json`` (``expect_error``).
    code = "codec"


class TruncatedError(CodecError):
    """Fewer bytes than the header or a length field promises."""

    code = "truncated"


class BadMagicError(CodecError):
    """The payload does not start with ``TFLT``."""

    code = "bad_magic"


class UnsupportedVersionError(CodecError):
    """The protocol version byte is not one this codec speaks."""

    code = "unsupported_version"


class BadMessageTypeError(CodecError):
    """Unknown message type byte."""

    code = "bad_message_type"


class OversizedError(CodecError):
    """The message is longer than the receiver's limit."""

    code = "oversized"


class BadCrcError(CodecError):
    """CRC32 mismatch: the bytes were corrupted."""

    code = "bad_crc"


class MalformedError(CodecError):
    """The structure inside a CRC-valid message is inconsistent (bad counts, sizes, pad)."""

    code = "malformed"


class ChunkError(CodecError):
    """Chunks do not fit together (inconsistent totals, overlaps, unknown message)."""

    code = "chunk"


ERRORS_BY_CODE: dict[str, type[CodecError]] = {
    cls.code: cls
    for cls in (
        CodecError,
        TruncatedError,
        BadMagicError,
        UnsupportedVersionError,
        BadMessageTypeError,
        OversizedError,
        BadCrcError,
        MalformedError,
        ChunkError,
    )
}


# -- enums ------------------------------------------------------------------------------
class MessageType(enum.IntEnum):
    """What a payload is; the byte at offset 5."""

    TRAIN = 1  # server -> device: train on your stream from these parameters
    EVALUATE = 2  # server -> device: evaluate these parameters
    REPLY = 3  # device -> server: result of a TRAIN or EVALUATE task
    CHUNK = 4  # one piece of a longer message
    ERROR = 5  # device -> server: the task failed (fields "code" and "reason")


class DType(enum.IntEnum):
    """Element type of an array on the wire."""

    FLOAT32 = 1
    INT8 = 2  # affine quantised: value = (q - zero_point) * scale


class FieldType(enum.IntEnum):
    """Type of one key/value field (task config or reply metrics)."""

    INT64 = 1
    FLOAT64 = 2
    BOOL = 3
    STRING = 4


ARRAY_FLAG_SPARSE = 0x01
FieldValue = int | float | bool | str


# -- decoded values -----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class WireArray:
    """One array as it travels.

    ``values`` holds the stored elements: float32 or int8, all ``size`` of them when
    dense, ``nnz`` of them at ``indices`` (flat C-order positions) when sparse.
    """

    name: str
    shape: tuple[int, ...]
    dtype: DType
    values: np.ndarray
    scale: float = 1.0
    zero_point: int = 0
    indices: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    def to_float32(self) -> np.ndarray:
        """The dense float32 array (zeros where a sparse array has no entry)."""
        if self.dtype == DType.INT8:
            # int32 subtraction is exact; then one float32 multiply (C does the same).
            vals = (self.values.astype(np.int32) - np.int32(self.zero_point)).astype(
                np.float32
            ) * np.float32(self.scale)
        else:
            vals = self.values.astype(np.float32, copy=True)
        if self.indices is None:
            return vals.reshape(self.shape)
        dense = np.zeros(self.size, dtype=np.float32)
        dense[self.indices] = vals
        return dense.reshape(self.shape)


@dataclass(frozen=True, eq=False)
class WireMessage:
    """A decoded TRAIN / EVALUATE / REPLY / ERROR message."""

    msg_type: MessageType
    round: int
    msg_id: int
    device_id: str
    fields: tuple[tuple[str, FieldValue], ...] = ()
    arrays: tuple[WireArray, ...] = ()

    def fields_dict(self) -> dict[str, FieldValue]:
        return dict(self.fields)

    def array(self, name: str) -> WireArray:
        for arr in self.arrays:
            if arr.name == name:
                return arr
        raise KeyError(name)


@dataclass(frozen=True)
class Chunk:
    """One decoded CHUNK message: ``data`` is bytes ``[offset, offset+len)`` of the inner
    encoded message, which is ``total_len`` bytes long and split into ``count`` chunks."""

    round: int
    msg_id: int
    device_id: str
    index: int
    count: int
    total_len: int
    offset: int
    data: bytes


# -- array constructors -------------------------------------------------------------------
def float32_array(name: str, values: np.ndarray) -> WireArray:
    """A dense float32 wire array (copied, C order)."""
    arr = np.ascontiguousarray(values, dtype=np.float32)
    return WireArray(name, tuple(int(d) for d in arr.shape), DType.FLOAT32, arr.ravel().copy())


def quantize_int8(values: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Affine int8 quantisation over ``[min(x, 0), max(x, 0)]``; returns ``(q, scale, zp)``.

    Non-finite inputs raise :class:`CodecError` (they cannot be represented in int8).
    """
    x = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise CodecError("cannot int8-quantise NaN or Inf values")
    lo = float(min(float(x.min(initial=0.0)), 0.0))
    hi = float(max(float(x.max(initial=0.0)), 0.0))
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    # A range of a few subnormals underflows to 0: keep the scale a positive normal float.
    scale = max(scale, np.finfo(np.float32).tiny)
    zero_point = int(np.clip(round(-128.0 - lo / float(scale)), -128, 127))
    q = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)
    return q, float(scale), zero_point


def int8_array(name: str, values: np.ndarray) -> WireArray:
    """Quantise ``values`` to an int8 wire array."""
    x = np.asarray(values, dtype=np.float32)
    q, scale, zp = quantize_int8(x)
    return WireArray(name, tuple(int(d) for d in x.shape), DType.INT8, q.ravel(), scale, zp)


def sparse_top_p(
    name: str, values: np.ndarray, fraction: float, *, int8: bool = False
) -> WireArray:
    """Keep the ``ceil(fraction * size)`` largest-magnitude entries (Top-P%), sparse.

    Ties are broken by position (stable), so the choice is deterministic.
    """
    if not 0.0 < fraction <= 1.0:
        raise CodecError(f"top-p fraction must be in (0, 1], got {fraction}")
    x = np.asarray(values, dtype=np.float32)
    flat = x.ravel()
    keep = max(1, math.ceil(fraction * flat.size)) if flat.size else 0
    order = np.argsort(-np.abs(flat), kind="stable")[:keep]
    idx = np.sort(order).astype(np.uint32)
    shape = tuple(int(d) for d in x.shape)
    if int8:
        q, scale, zp = quantize_int8(flat[idx])
        return WireArray(name, shape, DType.INT8, q, scale, zp, idx)
    return WireArray(name, shape, DType.FLOAT32, flat[idx].copy(), indices=idx)


# -- encoding ----------------------------------------------------------------------------
def _pad4(n: int) -> int:
    return (-n) % 4


def _utf8(text: str, what: str, limit: int, minimum: int = 1) -> bytes:
    data = text.encode("utf-8")
    if not minimum <= len(data) <= limit:
        raise CodecError(f"{what} must be {minimum}..{limit} UTF-8 bytes, got {len(data)}")
    return data


def _encode_field(key: str, value: FieldValue) -> bytes:
    kb = _utf8(key, "field key", MAX_KEY)
    if isinstance(value, bool):
        ftype, vb = FieldType.BOOL, bytes([1 if value else 0])
    elif isinstance(value, int | np.integer):
        if not -(2**63) <= int(value) < 2**63:
            raise CodecError(f"field {key!r}: integer {value} does not fit in int64")
        ftype, vb = FieldType.INT64, struct.pack("<q", int(value))
    elif isinstance(value, float | np.floating):
        ftype, vb = FieldType.FLOAT64, struct.pack("<d", float(value))
    elif isinstance(value, str):
        ftype, vb = FieldType.STRING, _utf8(value, f"field {key!r} string", MAX_STRING, 0)
    else:
        raise CodecError(f"field {key!r}: unsupported value type {type(value).__name__}")
    body = _FIELD_HEAD.pack(len(kb), ftype, len(vb)) + kb + vb
    return body + b"\0" * _pad4(len(body))


def _encode_array(arr: WireArray) -> bytes:
    nb = _utf8(arr.name, "array name", MAX_KEY)
    if len(arr.shape) > MAX_NDIM or any(not 0 <= d <= 0xFFFFFFFF for d in arr.shape):
        raise CodecError(f"array {arr.name!r}: shape {arr.shape} not encodable (ndim <= 4)")
    size = arr.size
    sparse = arr.indices is not None
    np_dtype = np.float32 if arr.dtype == DType.FLOAT32 else np.int8
    values = np.ascontiguousarray(arr.values, dtype=np_dtype).ravel()
    out = [
        _ARRAY_HEAD.pack(
            len(nb), int(arr.dtype), ARRAY_FLAG_SPARSE if sparse else 0, len(arr.shape)
        )
    ]
    out.append(struct.pack(f"<{len(arr.shape)}I", *arr.shape))
    if arr.dtype == DType.INT8:
        if not -128 <= arr.zero_point <= 127:
            raise CodecError(f"array {arr.name!r}: zero point {arr.zero_point} not in int8")
        out.append(struct.pack("<fi", arr.scale, arr.zero_point))
    if sparse:
        assert arr.indices is not None
        idx = np.ascontiguousarray(arr.indices, dtype=np.uint32).ravel()
        if idx.size != values.size:
            raise CodecError(f"array {arr.name!r}: {idx.size} indices for {values.size} values")
        if idx.size and (np.any(np.diff(idx.astype(np.int64)) <= 0) or int(idx[-1]) >= size):
            raise CodecError(f"array {arr.name!r}: sparse indices must increase and be < size")
        out.append(struct.pack("<I", idx.size))
    elif values.size != size:
        raise CodecError(f"array {arr.name!r}: {values.size} values for shape {arr.shape}")
    head = b"".join(out) + nb
    head += b"\0" * _pad4(len(head))
    parts = [head]
    if sparse:
        parts.append(idx.astype("<u4").tobytes())
    data = values.astype("<f4" if arr.dtype == DType.FLOAT32 else "i1").tobytes()
    parts.append(data + b"\0" * _pad4(len(data)))
    return b"".join(parts)


def _finish(header_wo_crc: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(header_wo_crc[:28]))
    return header_wo_crc[:28] + struct.pack("<I", crc) + body


def encode_message(
    msg_type: MessageType,
    *,
    round: int,
    msg_id: int,
    device_id: str,
    fields: Mapping[str, FieldValue] | Iterable[tuple[str, FieldValue]] = (),
    arrays: Sequence[WireArray] = (),
) -> bytes:
    """Encode a TRAIN / EVALUATE / REPLY / ERROR message (see docs/protocol.md)."""
    msg_type = MessageType(msg_type)
    if msg_type == MessageType.CHUNK:
        raise CodecError("use split_message() to make chunks")
    items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    if len(items) > MAX_FIELDS:
        raise CodecError(f"at most {MAX_FIELDS} fields, got {len(items)}")
    if len({k for k, _ in items}) != len(items):
        raise CodecError("field keys must be unique")
    if len(arrays) > MAX_ARRAYS:
        raise CodecError(f"at most {MAX_ARRAYS} arrays, got {len(arrays)}")
    if len({a.name for a in arrays}) != len(arrays):
        raise CodecError("array names must be unique")
    for what, value in (("round", round), ("msg_id", msg_id)):
        if not 0 <= value <= 0xFFFFFFFF:
            raise CodecError(f"{what} must fit in uint32, got {value}")
    dev = _utf8(device_id, "device id", MAX_DEVICE_ID)
    body = b"".join(
        [dev + b"\0" * _pad4(len(dev))]
        + [_encode_field(k, v) for k, v in items]
        + [_encode_array(a) for a in arrays]
    )
    header = _HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        msg_type,
        0,
        round,
        msg_id,
        len(body),
        len(dev),
        len(items),
        len(arrays),
        0,
        0,
        0,
    )
    return _finish(header, body)


def encode_chunk(chunk: Chunk) -> bytes:
    dev = _utf8(chunk.device_id, "device id", MAX_DEVICE_ID)
    body = (
        dev
        + b"\0" * _pad4(len(dev))
        + _CHUNK_PREFIX.pack(chunk.index, chunk.count, chunk.total_len, chunk.offset)
        + chunk.data
    )
    header = _HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        MessageType.CHUNK,
        0,
        chunk.round,
        chunk.msg_id,
        len(body),
        len(dev),
        0,
        0,
        0,
        0,
        0,
    )
    return _finish(header, body)


def split_message(encoded: bytes, max_payload: int) -> list[bytes]:
    """Split an encoded message into MQTT payloads of at most ``max_payload`` bytes.

    A message that already fits is returned unchanged (one payload); otherwise it is cut
    into CHUNK messages carrying consecutive, equal-sized pieces (the last may be shorter).
    """
    if len(encoded) <= max_payload:
        return [encoded]
    head = peek_header(encoded)
    dev = head.device_id.encode()
    overhead = HEADER_SIZE + len(dev) + _pad4(len(dev)) + CHUNK_PREFIX_SIZE
    piece = max_payload - overhead
    if piece < 4:
        raise CodecError(f"max payload {max_payload} too small for chunks (> {overhead + 4})")
    count = -(-len(encoded) // piece)
    if count > MAX_CHUNKS:
        raise CodecError(f"message needs {count} chunks; at most {MAX_CHUNKS}")
    return [
        encode_chunk(
            Chunk(
                head.round,
                head.msg_id,
                head.device_id,
                i,
                count,
                len(encoded),
                i * piece,
                encoded[i * piece : (i + 1) * piece],
            )
        )
        for i in range(count)
    ]


# -- decoding ----------------------------------------------------------------------------
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

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))

    def pad(self, n: int, what: str) -> None:
        if any(self.take(_pad4(n), what)):
            raise MalformedError(f"non-zero padding after {what}")

    def text(self, n: int, what: str) -> str:
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedError(f"{what} is not valid UTF-8") from error


def _check_header(payload: bytes, max_message_bytes: int) -> tuple[Header, int]:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise CodecError(f"payload must be bytes, got {type(payload).__name__}")
    payload = bytes(payload)
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
    raw = r.take(item * count, "array data")
    r.pad(item * count, "array data")
    values = np.frombuffer(raw, dtype="<f4" if item == 4 else "i1").astype(
        np.float32 if item == 4 else np.int8
    )
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
    head, pos = _check_header(payload, max_message_bytes)
    payload = bytes(payload)
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


# -- reassembly ----------------------------------------------------------------------------
@dataclass
class _Pending:
    count: int
    total_len: int
    buffer: bytearray
    seen: dict[int, tuple[int, int]] = field(default_factory=dict)


class ChunkAssembler:
    """Reassembles chunked messages, keyed by ``(device_id, msg_id)``.

    ``add`` returns the decoded whole message once every chunk has arrived, else None.
    A repeated chunk (MQTT QoS 1 may redeliver) is ignored; inconsistent chunks raise
    :class:`ChunkError` and drop that message's partial state. At most ``max_pending``
    messages are kept; the oldest is dropped beyond that.
    """

    def __init__(
        self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_pending: int = 64
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_pending = max_pending
        self._pending: dict[tuple[str, int], _Pending] = {}

    def add(self, payload: bytes) -> WireMessage | None:
        item = decode(payload, self.max_message_bytes)
        if isinstance(item, WireMessage):
            return item
        key = (item.device_id, item.msg_id)
        pend = self._pending.get(key)
        if pend is None:
            while len(self._pending) >= self.max_pending:
                self._pending.pop(next(iter(self._pending)))
            pend = _Pending(item.count, item.total_len, bytearray(item.total_len))
            self._pending[key] = pend
        if pend.count != item.count or pend.total_len != item.total_len:
            del self._pending[key]
            raise ChunkError(f"chunk {item.index} of message {item.msg_id} disagrees on totals")
        span = (item.offset, item.offset + len(item.data))
        if item.index in pend.seen:
            if pend.seen[item.index] != span:
                del self._pending[key]
                raise ChunkError(f"chunk {item.index} of message {item.msg_id} sent twice, differs")
            return None
        pend.buffer[span[0] : span[1]] = item.data
        pend.seen[item.index] = span
        if len(pend.seen) < pend.count:
            return None
        del self._pending[key]
        spans = sorted(pend.seen.values())
        cursor = 0
        for start, end in spans:
            if start != cursor:
                raise ChunkError(f"chunks of message {item.msg_id} leave gaps or overlap")
            cursor = end
        if cursor != pend.total_len:
            raise ChunkError(f"chunks of message {item.msg_id} do not cover its length")
        inner = decode_message(bytes(pend.buffer), self.max_message_bytes)
        if inner.msg_id != item.msg_id or inner.device_id != item.device_id:
            raise ChunkError("reassembled message does not match its chunks' id")
        return inner


# -- topics ----------------------------------------------------------------------------------
TOPIC_ROOT = "tinyfleet"
TOPIC_KINDS = ("task", "update", "status", "description")


def _check_segment(value: str, what: str) -> str:
    if not value or any(c in value for c in "/+#\0") or len(value.encode()) > MAX_DEVICE_ID:
        raise CodecError(f"{what} {value!r} must be 1..64 bytes without '/', '+', '#'")
    return value


def topic(fleet: str, device_id: str, kind: str) -> str:
    """``tinyfleet/<fleet>/<device_id>/<kind>`` with kind in task|update|status|description."""
    if kind not in TOPIC_KINDS:
        raise CodecError(f"unknown topic kind {kind!r}; choose from {TOPIC_KINDS}")
    return f"{TOPIC_ROOT}/{_check_segment(fleet, 'fleet')}/{_check_segment(device_id, 'device id')}/{kind}"


def parse_topic(name: str) -> tuple[str, str, str]:
    """Split a tinyfleet topic into ``(fleet, device_id, kind)``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[3] not in TOPIC_KINDS:
        raise CodecError(f"not a tinyfleet topic: {name!r}")
    return parts[1], parts[2], parts[3]
