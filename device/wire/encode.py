"""Encoding messages and chunks (little-endian, 4-byte aligned, CRC32)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tinyfleet.device.wire.decode import peek_header
from tinyfleet.device.wire.errors import CodecError
from tinyfleet.device.wire.types import (
    _ARRAY_HEAD,
    _CHUNK_PREFIX,
    _FIELD_HEAD,
    _HEADER,
    ARRAY_FLAG_SPARSE,
    CHUNK_PREFIX_SIZE,
    HEADER_SIZE,
    MAGIC,
    MAX_ARRAYS,
    MAX_CHUNKS,
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
    pad4,
)


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
    return body + b"\0" * pad4(len(body))


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
    head += b"\0" * pad4(len(head))
    parts = [head]
    if sparse:
        parts.append(idx.astype("<u4").tobytes())
    data = values.astype("<f4" if arr.dtype == DType.FLOAT32 else "i1").tobytes()
    parts.append(data + b"\0" * pad4(len(data)))
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
        [dev + b"\0" * pad4(len(dev))]
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
        + b"\0" * pad4(len(dev))
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
    overhead = HEADER_SIZE + len(dev) + pad4(len(dev)) + CHUNK_PREFIX_SIZE
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
