"""Property tests: encode/decode round trips, and decode of garbage fails only cleanly."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyfleet.device import wire
from tinyfleet.device.wire import MessageType

names = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=8
)
field_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, width=64),
    st.text(max_size=10),
)
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)


@st.composite
def arrays(draw: st.DrawFn, name: str) -> wire.WireArray:
    shape = draw(shapes)
    size = int(np.prod(shape)) if shape else 1
    data = np.array(
        draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=size, max_size=size)),
        dtype=np.float32,
    ).reshape(shape)
    kind = draw(st.sampled_from(["f32", "i8", "sparse", "sparse-i8"]))
    if kind == "f32":
        return wire.float32_array(name, data)
    if kind == "i8":
        return wire.int8_array(name, data)
    if size == 0:
        return wire.float32_array(name, data)
    frac = draw(st.floats(0.01, 1.0))
    return wire.sparse_top_p(name, data, frac, int8=kind == "sparse-i8")


@st.composite
def messages(draw: st.DrawFn) -> dict:
    keys = draw(st.lists(names, max_size=5, unique=True))
    fields = {k: draw(field_values) for k in keys}
    anames = draw(st.lists(names, max_size=3, unique=True))
    return {
        "msg_type": draw(st.sampled_from([t for t in MessageType if t != MessageType.CHUNK])),
        "round": draw(st.integers(0, 2**32 - 1)),
        "msg_id": draw(st.integers(0, 2**32 - 1)),
        "device_id": draw(names),
        "fields": fields,
        "arrays": [draw(arrays(n)) for n in anames],
    }


def _same_array(a: wire.WireArray, b: wire.WireArray) -> None:
    assert (a.name, a.shape, a.dtype, a.zero_point) == (b.name, b.shape, b.dtype, b.zero_point)
    assert np.float32(a.scale) == np.float32(b.scale)
    assert a.values.tobytes() == b.values.tobytes()
    assert (a.indices is None) == (b.indices is None)
    if a.indices is not None:
        assert b.indices is not None and a.indices.tobytes() == b.indices.tobytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.integers(60, 400))
def test_roundtrip_whole_and_chunked(spec: dict, max_payload: int) -> None:
    data = wire.encode_message(**spec)
    out = wire.decode_message(data)
    assert (out.msg_type, out.round, out.msg_id, out.device_id) == (
        spec["msg_type"],
        spec["round"],
        spec["msg_id"],
        spec["device_id"],
    )
    assert out.fields_dict() == spec["fields"]
    for a, b in zip(spec["arrays"], out.arrays, strict=True):
        _same_array(a, b)
    if max_payload < 44 + 4 * 17:  # device ids up to 8 chars * 2 bytes: need room for data
        return
    pieces = wire.split_message(data, max_payload)
    assert all(len(p) <= max_payload for p in pieces)
    assembler = wire.ChunkAssembler()
    results = [assembler.add(p) for p in reversed(pieces)]
    assert wire.encode_message(**spec) == data
    final = results[-1]
    assert final is not None and final.fields == out.fields
    assert all(r is None for r in results[:-1])


def _decode_or_codec_error(data: bytes, limit: int = wire.DEFAULT_MAX_MESSAGE_BYTES) -> None:
    with contextlib.suppress(wire.CodecError):
        wire.decode(data, limit)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_codec_errors(data: bytes) -> None:
    _decode_or_codec_error(data)
    _decode_or_codec_error(b"TFLT\x01" + data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_mutated_and_truncated_only_codec_errors(spec: dict, data: st.DataObject) -> None:
    raw = bytearray(wire.encode_message(**spec))
    cut = data.draw(st.integers(0, len(raw)))
    _decode_or_codec_error(bytes(raw[:cut]))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _decode_or_codec_error(bytes(raw))
    # With the CRC fixed up, the structural checks behind it get exercised too.
    fixed = _refresh_crc(bytes(raw))
    _decode_or_codec_error(fixed)
    _decode_or_codec_error(fixed, limit=data.draw(st.integers(0, 400)))
    assembler = wire.ChunkAssembler()
    with contextlib.suppress(wire.CodecError):
        assembler.add(fixed)


def _refresh_crc(data: bytes) -> bytes:  # noqa: N802 - mirrors make_vectors._refresh_crc
    import struct
    import zlib

    if len(data) < 32:
        return data
    crc = zlib.crc32(data[32:], zlib.crc32(data[:28]))
    return data[:28] + struct.pack("<I", crc) + data[32:]


def test_encode_rejects_bad_input_with_codec_error() -> None:
    with pytest.raises(wire.CodecError):
        wire.encode_message(MessageType.REPLY, round=-1, msg_id=0, device_id="d")
    with pytest.raises(wire.CodecError):
        wire.encode_message(MessageType.REPLY, round=0, msg_id=0, device_id="")
    with pytest.raises(wire.CodecError):
        wire.encode_message(
            MessageType.REPLY, round=0, msg_id=0, device_id="d", fields={"x": [1, 2]}
        )  # type: ignore[dict-item]
    with pytest.raises(wire.CodecError):
        wire.int8_array("x", np.array([np.nan], np.float32))
    with pytest.raises(wire.CodecError):
        wire.topic("fleet", "a/b", "task")
    assert wire.topic("f", "d1", "update") == "tinyfleet/f/d1/update"
    assert wire.parse_topic("tinyfleet/f/d1/status") == ("f", "d1", "status")
