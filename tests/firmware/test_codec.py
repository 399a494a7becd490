"""The C wire codec against docs/protocol.md's shared test vectors, plus fuzzing.

Everything runs in the host build with AddressSanitizer + UBSan, so an out-of-bounds
read or undefined behaviour on any input fails the test.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyfleet.firmware.toolchain import cmake_build, missing_tools

VECTORS = Path(__file__).resolve().parents[2] / "device" / "wire" / "vectors"
pytestmark = pytest.mark.firmware


def _index() -> list[dict[str, Any]]:
    path = VECTORS / "index.json"
    if not path.exists():
        return []
    return list(json.loads(path.read_text())["vectors"])


@pytest.fixture(scope="session")
def codec_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = missing_tools("host")
    if missing:
        pytest.skip(f"host toolchain absent: {', '.join(missing)} not on PATH")
    build = cmake_build("host", tmp_path_factory.mktemp("fw_codec"), None, sanitize=True)
    return build.build_dir / "tinyfleet_codec_tool"


@pytest.fixture(scope="session")
def vector_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("fw_vectors")
    bins = {}
    for hex_file in sorted(VECTORS.glob("*.hex")):
        path = out / (hex_file.stem + ".bin")
        path.write_bytes(bytes.fromhex("".join(hex_file.read_text().split())))
        bins[hex_file.name] = path
    return bins


def _run(tool: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout))


def _same_array(c: dict[str, Any], ref: dict[str, Any]) -> None:
    for key in ("name", "dtype", "shape", "sparse", "zero_point", "indices"):
        assert c[key] == ref[key], key
    f32 = np.float32
    assert f32(c["scale"]) == f32(ref["scale"])
    assert np.array_equal(np.asarray(c["values"], f32), np.asarray(ref["values"], f32))
    assert np.array_equal(
        np.asarray(c["dense_float32"], f32), np.asarray(ref["dense_float32"], f32)
    )


def _same_message(c: dict[str, Any], ref: dict[str, Any]) -> None:
    for key in ("type", "round", "msg_id", "device_id"):
        assert c[key] == ref[key], key
    if ref["type"] == "CHUNK":
        for key in ("index", "count", "total_len", "offset", "length"):
            assert c[key] == ref[key], key
        return
    assert c["fields"] == ref["fields"]
    assert len(c["arrays"]) == len(ref["arrays"])
    for ca, ra in zip(c["arrays"], ref["arrays"], strict=True):
        _same_array(ca, ra)


@pytest.mark.parametrize("vector", _index(), ids=lambda v: v["name"])
def test_c_codec_passes_vector(
    vector: dict[str, Any], codec_tool: Path, vector_bins: dict[str, Path]
) -> None:
    files = [str(vector_bins[name]) for name in vector["files"]]
    out = _run(codec_tool, "decode", str(vector["max_message_bytes"]), *files)
    assert out["result"] == vector["expect"]
    if vector["expect"] == "ok":
        assert len(out["decoded"]) == len(vector["decoded"])
        for c, ref in zip(out["decoded"], vector["decoded"], strict=True):
            _same_message(c, ref)
        if "message" in vector:
            _same_message(out["message"], vector["message"])
        # encoding is deterministic: decode -> encode gives the same bytes back
        assert out["roundtrip"] is True


def test_every_vector_file_is_used() -> None:
    if not _index():
        pytest.skip("device/wire/vectors/index.json not present")
    used = {name for v in _index() for name in v["files"]}
    assert used == {p.name for p in VECTORS.glob("*.hex")}


def test_c_codec_survives_mutation_fuzzing(codec_tool: Path, vector_bins: dict[str, Path]) -> None:
    if not vector_bins:
        pytest.skip("no test vectors")
    out = _run(codec_tool, "fuzz", "12345", "200000", *map(str, vector_bins.values()))
    assert out["iterations"] == 200000
    # the mutations reach every layer of the decoder, not just the header checks
    for code in ("ok", "truncated", "bad_crc", "malformed"):
        assert out.get(code, 0) > 0, (code, out)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=8))
def test_c_codec_never_crashes_on_random_payloads(
    codec_tool: Path, tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes]
) -> None:
    # Random payloads, half of them with a valid magic/version so decoding goes deeper.
    work = tmp_path_factory.mktemp("fw_random")
    files = []
    for i, data in enumerate(payloads):
        if i % 2 and len(data) >= 6:
            data = b"TFLT\x01" + data[5:]
        path = work / f"p{i}.bin"
        path.write_bytes(data)
        files.append(str(path))
    out = _run(codec_tool, "decode", "4096", *files)
    assert out["result"] in {
        "ok", "truncated", "bad_magic", "unsupported_version", "bad_message_type",
        "oversized", "malformed", "bad_crc", "chunk",
    }  # fmt: skip
