"""The committed test vectors (device/wire/vectors/) decode exactly as their index says.

The C codec runs the same index; this test also regenerates the vectors and checks the
committed bytes are what the Python encoder writes today.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from tinyfleet.device import wire

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "device" / "wire" / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text())
MAKER = runpy.run_path(str(Path(__file__).with_name("make_vectors.py")))


def _read(name: str) -> bytes:
    return bytes.fromhex("".join((VECTORS / name).read_text().split()))


def test_committed_vectors_match_the_encoder(tmp_path: Path) -> None:
    MAKER["write"](tmp_path)
    fresh = sorted(p.name for p in tmp_path.iterdir())
    assert fresh == sorted(p.name for p in VECTORS.iterdir() if p.suffix in {".hex", ".json"})
    for name in fresh:
        assert (tmp_path / name).read_text() == (VECTORS / name).read_text(), name


def test_index_covers_every_type_dtype_and_error() -> None:
    ok = [v for v in INDEX["vectors"] if v["expect"] == "ok"]
    types = {d["type"] for v in ok for d in v["decoded"]}
    assert types == {"TRAIN", "EVALUATE", "REPLY", "ERROR", "CHUNK"}
    arrays = [a for v in ok for d in v["decoded"] for a in d.get("arrays", [])]
    assert {(a["dtype"], a["sparse"]) for a in arrays} == {
        ("float32", False),
        ("float32", True),
        ("int8", False),
        ("int8", True),
    }
    expected_errors = {v["expect"] for v in INDEX["vectors"]} - {"ok"}
    assert expected_errors == set(wire.ERRORS_BY_CODE) - {"codec"}
    assert len(INDEX["vectors"]) >= 12


@pytest.mark.parametrize("vector", INDEX["vectors"], ids=lambda v: v["name"])
def test_vector(vector: dict) -> None:
    limit = vector["max_message_bytes"]
    payloads = [_read(f) for f in vector["files"]]
    if vector["expect"] != "ok":
        assembler = wire.ChunkAssembler(limit)
        with pytest.raises(wire.CodecError) as info:
            for p in payloads:
                assembler.add(p)
        assert info.value.code == vector["expect"], str(info.value)
        return
    describe = MAKER["describe_message"], MAKER["describe_chunk"]
    got = []
    for p in payloads:
        item = wire.decode(p, limit)
        got.append(describe[1](item) if isinstance(item, wire.Chunk) else describe[0](item))
        assert wire.peek_header(p, limit).msg_id == got[-1]["msg_id"]
    assert got == vector["decoded"]
    if "message" in vector:
        assembler = wire.ChunkAssembler(limit)
        results = [assembler.add(p) for p in payloads]
        assert all(r is None for r in results[:-1])
        assert results[-1] is not None
        assert MAKER["describe_message"](results[-1]) == vector["message"]


def test_crc_is_ieee_crc32() -> None:
    import zlib

    assert zlib.crc32(b"123456789") == 0xCBF43926  # the check value quoted in protocol.md
