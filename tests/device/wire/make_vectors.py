"""Write the wire-protocol test vectors in ``device/wire/vectors/`` (hex files + index.json).

Run ``.venv/bin/python tests/device/wire/make_vectors.py`` after a deliberate protocol change;
``tests/device/wire/test_vectors.py`` checks that the committed files equal what this writes, and
that every vector decodes (or fails) as its index entry says. The C codec reads the same
index. Everything here is deterministic: no randomness, no clock.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.device import wire
from tinyfleet.device.wire import (
    Chunk,
    MessageType,
    WireArray,
    WireMessage,
    decode,
    encode_message,
    float32_array,
    int8_array,
    sparse_top_p,
    split_message,
)

VECTOR_DIR = Path(__file__).resolve().parents[3] / "device" / "wire" / "vectors"
DEFAULT_LIMIT = wire.DEFAULT_MAX_MESSAGE_BYTES


def to_hex(data: bytes) -> str:
    """Lowercase hex, 32 bytes per line (whitespace is not significant)."""
    lines = [data[i : i + 32].hex() for i in range(0, len(data), 32)]
    return "\n".join(lines) + "\n"


def from_hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def _refresh_crc(data: bytes) -> bytes:
    """Recompute the CRC after a deliberate edit (to reach checks behind the CRC)."""
    crc = zlib.crc32(data[32:], zlib.crc32(data[:28]))
    return data[:28] + struct.pack("<I", crc) + data[32:]


def describe_array(arr: WireArray) -> dict[str, Any]:
    values = (
        [float(v) for v in arr.values]
        if arr.values.dtype == np.float32
        else [int(v) for v in arr.values]
    )
    return {
        "name": arr.name,
        "dtype": arr.dtype.name.lower(),
        "shape": list(arr.shape),
        "sparse": arr.indices is not None,
        "scale": float(arr.scale),
        "zero_point": int(arr.zero_point),
        "indices": None if arr.indices is None else [int(i) for i in arr.indices],
        "values": values,
        "dense_float32": [float(v) for v in arr.to_float32().ravel()],
    }


def describe_message(msg: WireMessage) -> dict[str, Any]:
    ftypes = {bool: "bool", int: "int64", float: "float64", str: "string"}
    return {
        "type": msg.msg_type.name,
        "round": msg.round,
        "msg_id": msg.msg_id,
        "device_id": msg.device_id,
        "fields": [{"key": k, "type": ftypes[type(v)], "value": v} for k, v in msg.fields],
        "arrays": [describe_array(a) for a in msg.arrays],
    }


def describe_chunk(ch: Chunk) -> dict[str, Any]:
    return {
        "type": "CHUNK",
        "round": ch.round,
        "msg_id": ch.msg_id,
        "device_id": ch.device_id,
        "index": ch.index,
        "count": ch.count,
        "total_len": ch.total_len,
        "offset": ch.offset,
        "length": len(ch.data),
    }


def build() -> tuple[dict[str, bytes], dict[str, Any]]:
    files: dict[str, bytes] = {}
    entries: list[dict[str, Any]] = []

    def ok(name: str, data: bytes, note: str, limit: int = DEFAULT_LIMIT) -> None:
        files[f"{name}.hex"] = data
        item = decode(data, limit)
        desc = describe_message(item) if isinstance(item, WireMessage) else describe_chunk(item)
        entries.append(
            {
                "name": name,
                "files": [f"{name}.hex"],
                "description": note,
                "max_message_bytes": limit,
                "expect": "ok",
                "decoded": [desc],
            }
        )

    def bad(name: str, data: bytes, error: str, note: str, limit: int = DEFAULT_LIMIT) -> None:
        files[f"{name}.hex"] = data
        entries.append(
            {
                "name": name,
                "files": [f"{name}.hex"],
                "description": note,
                "max_message_bytes": limit,
                "expect": error,
            }
        )

    w1 = np.array([[0.5, -1.25, 2.0], [0.125, 3.0, -0.75]], dtype=np.float32)
    b1 = np.array([0.0, 0.1, -0.2], dtype=np.float32)
    train = encode_message(
        MessageType.TRAIN,
        round=3,
        msg_id=7,
        device_id="dev-0001",
        fields={
            "round": 3,
            "device-index": 1,
            "seed": 42,
            "algorithm": "tinyreptile",
            "k": 10,
            "inner-lr": 0.02,
        },
        arrays=[float32_array("w0", w1), float32_array("b0", b1)],
    )
    ok(
        "train_f32",
        train,
        "TRAIN task: six config fields (int64, string, float64), two float32 arrays",
    )

    ok(
        "evaluate_bool",
        encode_message(
            MessageType.EVALUATE,
            round=4,
            msg_id=8,
            device_id="nano33-0001",
            fields={"final": True, "steps": 5},
            arrays=[float32_array("theta", b1)],
        ),
        "EVALUATE task with a bool field and a 1-D array",
    )

    phi = np.linspace(-1.5, 2.5, 12, dtype=np.float32)
    ok(
        "reply_f32",
        encode_message(
            MessageType.REPLY,
            round=3,
            msg_id=7,
            device_id="dev-0001",
            fields={"loss": 0.3125, "num-examples": 10},
            arrays=[float32_array("phi", phi.reshape(3, 4))],
        ),
        "REPLY with float64/int64 metrics and a dense float32 3x4 array",
    )

    ok(
        "reply_int8",
        encode_message(
            MessageType.REPLY,
            round=5,
            msg_id=9,
            device_id="d",
            arrays=[int8_array("delta", phi)],
        ),
        "REPLY with an int8-quantised array (scale, zero point)",
    )

    delta = np.array([0.0, -0.5, 0.01, 2.0, 0.0, -0.02, 1.5, 0.3], dtype=np.float32)
    ok(
        "reply_sparse_f32",
        encode_message(
            MessageType.REPLY,
            round=6,
            msg_id=10,
            device_id="dev-0002",
            arrays=[sparse_top_p("delta", delta, 0.25)],
        ),
        "REPLY with a Top-P (25%) sparse float32 array: indices + values",
    )

    ok(
        "reply_sparse_int8",
        encode_message(
            MessageType.REPLY,
            round=6,
            msg_id=11,
            device_id="dev-0002",
            arrays=[sparse_top_p("delta", delta.reshape(2, 4), 0.5, int8=True)],
        ),
        "REPLY with a sparse int8 array of shape 2x4",
    )

    ok(
        "reply_scalar_empty",
        encode_message(
            MessageType.REPLY,
            round=0,
            msg_id=0,
            device_id="x",
            arrays=[float32_array("s", np.float32(1.0)), float32_array("e", np.zeros((0, 3)))],
        ),
        "REPLY with a 0-d scalar array and an empty 0x3 array",
    )

    ok(
        "error",
        encode_message(
            MessageType.ERROR,
            round=3,
            msg_id=7,
            device_id="dev-0001",
            fields={"code": 2, "reason": "out of memory"},
        ),
        "ERROR reply: int64 code and a string reason",
    )

    # Chunking: a reply cut into <= 96-byte MQTT payloads.
    long_reply = encode_message(
        MessageType.REPLY,
        round=9,
        msg_id=300,
        device_id="dev-0003",
        fields={"loss": 1.0},
        arrays=[float32_array("phi", np.arange(24, dtype=np.float32) / 8)],
    )
    pieces = split_message(long_reply, 96)
    names = [f"chunked_reply_{i}.hex" for i in range(len(pieces))]
    for n, p in zip(names, pieces, strict=True):
        files[n] = p
    entries.append(
        {
            "name": "chunked_reply",
            "files": names,
            "max_message_bytes": DEFAULT_LIMIT,
            "description": "a REPLY split into CHUNK payloads of <= 96 bytes; feed them in order "
            "to a reassembler; 'decoded' lists each chunk, 'message' the result",
            "expect": "ok",
            "decoded": [describe_chunk(decode(p)) for p in pieces],  # type: ignore[arg-type]
            "message": describe_message(decode(long_reply)),  # type: ignore[arg-type]
        }
    )
    # Same chunks, last one first: reassembly does not depend on order.
    rev = [f"chunked_reply_{i}.hex" for i in reversed(range(len(pieces)))]
    entries.append(
        {
            "name": "chunked_reply_reversed",
            "files": rev,
            "max_message_bytes": DEFAULT_LIMIT,
            "description": "the chunks of chunked_reply in reverse order: same message",
            "expect": "ok",
            "decoded": [describe_chunk(decode(files[n])) for n in rev],  # type: ignore[arg-type]
            "message": describe_message(decode(long_reply)),  # type: ignore[arg-type]
        }
    )
    c0 = decode(pieces[0])
    assert isinstance(c0, Chunk)
    wrong_total = wire.encode_chunk(
        Chunk(
            c0.round, c0.msg_id, c0.device_id, 1, c0.count, c0.total_len + 4, len(c0.data), c0.data
        )
    )
    files["chunk_wrong_total.hex"] = wrong_total
    entries.append(
        {
            "name": "chunk_inconsistent",
            "files": [names[0], "chunk_wrong_total.hex"],
            "max_message_bytes": DEFAULT_LIMIT,
            "expect": "chunk",
            "description": "second chunk announces a different total length than the first",
        }
    )

    # Invalid payloads: each names the error a decoder must report.
    flipped = bytearray(train)
    flipped[40] ^= 0x01
    bad("bad_crc", bytes(flipped), "bad_crc", "train_f32 with one body bit flipped")
    bad("truncated", train[:-8], "truncated", "train_f32 without its last 8 bytes")
    bad("truncated_header", train[:20], "truncated", "only 20 bytes: shorter than the header")
    bad("bad_magic", b"XFLT" + train[4:], "bad_magic", "first byte changed")
    bad(
        "bad_version",
        train[:4] + bytes([2]) + train[5:],
        "unsupported_version",
        "protocol version 2 (this is version 1)",
    )
    bad(
        "bad_message_type",
        _refresh_crc(train[:5] + bytes([9]) + train[6:]),
        "bad_message_type",
        "message type 9",
    )
    huge = bytearray(train[:32])
    huge[16:20] = struct.pack("<I", 0xFFFFFFF0)
    bad(
        "oversized_header",
        bytes(huge),
        "oversized",
        "header announces a 4 GiB body: rejected before reading further (no overflow)",
    )
    bad(
        "oversized_limit",
        train,
        "oversized",
        "valid train_f32 decoded with a receiver limit of 128 bytes",
        limit=128,
    )
    bad("trailing_bytes", train + b"\0\0\0\0", "malformed", "4 extra bytes after the body")
    bad(
        "nonzero_padding",
        _refresh_crc(_find_and_break_field_pad(train)),
        "malformed",
        "a padding byte after a field is 0x55 (CRC valid)",
    )
    bad_idx = bytearray(
        encode_message(
            MessageType.REPLY,
            round=6,
            msg_id=10,
            device_id="dev-0002",
            arrays=[
                WireArray(
                    "delta",
                    (8,),
                    wire.DType.FLOAT32,
                    np.array([1, 2], np.float32),
                    indices=np.array([1, 3], np.uint32),
                )
            ],
        )
    )
    idx_at = bad_idx.index(struct.pack("<II", 1, 3))
    bad_idx[idx_at : idx_at + 8] = struct.pack("<II", 3, 1)
    bad(
        "sparse_unsorted",
        _refresh_crc(bytes(bad_idx)),
        "malformed",
        "sparse indices 3, 1: must strictly increase (CRC valid)",
    )
    ndim = bytearray(
        encode_message(
            MessageType.REPLY,
            round=1,
            msg_id=1,
            device_id="dev-0001",
            arrays=[float32_array("a", np.zeros(2, np.float32))],
        )
    )
    ndim[32 + 8 + 3] = 5
    bad("too_many_dims", _refresh_crc(bytes(ndim)), "malformed", "an array with ndim 5 (> 4)")

    index = {
        "protocol_version": wire.PROTOCOL_VERSION,
        "format": "each file is lowercase hex, whitespace ignored; feed the files of one "
        "vector in order to one decoder/reassembler with max_message_bytes; "
        "expect is 'ok' or the error code of the first failure",
        "error_codes": sorted(wire.ERRORS_BY_CODE),
        "vectors": entries,
    }
    return files, index


def _find_and_break_field_pad(train: bytes) -> bytes:
    # The field "k" (key_len 1, int64) is 4 + 1 + 8 = 13 bytes, padded with 3 zero bytes.
    marker = bytes([1, wire.FieldType.INT64, 8, 0]) + b"k"
    at = train.index(marker)
    out = bytearray(train)
    out[at + 13] = 0x55
    return bytes(out)


def write(directory: Path = VECTOR_DIR) -> None:
    files, index = build()
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.hex"):
        old.unlink()
    for name, data in files.items():
        (directory / name).write_text(to_hex(data))
    (directory / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else VECTOR_DIR)
