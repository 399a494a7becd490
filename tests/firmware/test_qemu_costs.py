"""Instruction counting under QEMU -icount, and the per-model report."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from tinyfleet.cli import main
from tinyfleet.firmware.jobs import run_job


@pytest.mark.qemu
@pytest.mark.parametrize("n", [1000, 123457])
def test_instruction_counter_is_exact(n: int, qemu_builds: Any) -> None:
    # The runner executes a loop of exactly 2*n instructions between two readings.
    result, _ = run_job(
        qemu_builds["convnet"].job_runner, b"CALB" + struct.pack("<i", n), qemu=True, icount=True
    )
    (counted,) = struct.unpack("<I", result)
    assert abs(counted - 2 * n) <= 40  # one SysTick tick = 40 instructions


@pytest.mark.qemu
def test_report_json(fixture_models: Any, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(fixture_models[name].path) for name in ("convnet", "strided")]
    assert main(["firmware", "report", *paths, "--json", "--head-sizes", "5,8,5"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        assert row["fits"] == {"nano33ble": True}
        assert 0 < row["flash_bytes"] <= 1 << 20 and 0 < row["ram_bytes"] <= 256 * 1024
        assert row["arena_bytes"] > 0 and row["tflm_arena_bytes"] > row["arena_bytes"]
        assert row["insns_per_inference"] > 1000 and row["insns_per_sgd_step"] > 100
        # RAM holds at least the arena and the head; flash at least the weights
        assert row["ram_bytes"] >= row["arena_bytes"] + row["head_train_bytes"]
        assert row["flash_bytes"] >= row["weight_bytes"]
