"""Instruction counting under QEMU -icount, and the per-model report."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from tinyfleet.cli import main
from tinyfleet.firmware.jobs import run_job
from tinyfleet.firmware.toolchain import missing_tools


def _need(target: str) -> None:
    missing = missing_tools(target)
    if missing:
        pytest.skip(f"toolchain for {target} absent: {', '.join(missing)} not on PATH")


@pytest.mark.qemu
@pytest.mark.parametrize("n", [1000, 123457])
def test_instruction_counter_is_exact(n: int, plain_runners: dict[str, Any]) -> None:
    if "qemu" not in plain_runners:
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm / cmake absent")
    # The runner executes a loop of exactly 2*n instructions between two readings.
    result, _ = run_job(
        plain_runners["qemu"], b"CALB" + struct.pack("<i", n), qemu=True, icount=True
    )
    (counted,) = struct.unpack("<I", result)
    assert abs(counted - 2 * n) <= 40  # one SysTick tick = 40 instructions


@pytest.mark.qemu
@pytest.mark.tf
def test_report_json(fixture_models: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _need("qemu-mps2-an386")
    paths = [str(fixture_models[name].path) for name in ("convnet", "strided")]
    # no --head-sizes: each backbone gets a head on its own outputs (5 and 3)
    assert main(["firmware", "report", *paths, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["kernels"]) for r in rows] == [
        (p, k) for k in ("reference", "dsp") for p in paths
    ]
    for ref, dsp in zip(rows[:2], rows[2:], strict=True):
        assert dsp["insns_per_inference"] < ref["insns_per_inference"]
        assert dsp["arena_bytes"] == ref["arena_bytes"] and dsp["macs_per_inference"] > 0
        assert dsp["energy_uj_per_inference"] > 0
    for row in rows:
        assert row["fits"] == {"nano33ble": True}
        assert 0 < row["flash_bytes"] <= 1 << 20 and 0 < row["ram_bytes"] <= 256 * 1024
        assert row["arena_bytes"] > 0 and row["tflm_arena_bytes"] > row["arena_bytes"]
        assert row["insns_per_inference"] > 1000 and row["insns_per_sgd_step"] > 100
        # RAM holds at least the arena and the head; flash at least the weights
        assert row["ram_bytes"] >= row["arena_bytes"] + row["head_train_bytes"]
        assert row["flash_bytes"] >= row["weight_bytes"]


@pytest.mark.qemu
def test_report_float_head_card(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _need("qemu-mps2-an386")
    card = tmp_path / "model_card.json"
    card.write_text(
        json.dumps(
            {
                "name": "sine-head",
                "kind": "float-head",
                "tflite_file": None,
                "head": {"layer_sizes": [1, 40, 40, 1], "activation": "tanh", "loss": "mse"},
            }
        )
    )
    assert main(["firmware", "report", str(card), "--json", "--kernels", "reference"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["head_layer_sizes"] == [1, 40, 40, 1] and row["arena_bytes"] == 0
    assert row["insns_per_inference"] == 0 and row["insns_per_sgd_step"] > 10_000
    assert row["fits"] == {"nano33ble": True}


@pytest.mark.qemu
@pytest.mark.tf
def test_nano33ble_build_links_for_the_board(
    fixture_models: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _need("nano33ble")
    model = str(fixture_models["digits"].path)
    out = tmp_path / "nano"
    assert main(["firmware", "build", "--target", "nano33ble", "--model", model,
                 "--build-dir", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "Arduino library" in text
    library = out / "arduino" / "tinyfleet"
    assert (library / "library.properties").exists()
    assert {
        "tinyfleet_model.c",
        "tinyfleet_kernels.c",
        "tinyfleet_kernels_dsp.c",
        "tinyfleet_kernels_internal.h",
        "tinyfleet.h",
    } <= {p.name for p in (library / "src").iterdir()}
    elf = out / "tinyfleet_job_runner.elf"
    assert elf.read_bytes()[:4] == b"\x7fELF" and elf.read_bytes()[18] == 40  # EM_ARM


def _linked(elf: Any) -> set[str]:
    import subprocess

    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if " T " in line}


@pytest.mark.qemu
@pytest.mark.tf
def test_dsp_build_links_only_the_kernels_it_runs(firmware_build: Any) -> None:
    """Issue 15, flash: a layer the DSP kernels cover calls the kernels' _fast entry, so a
    DSP build does not link the reference loop it never runs; an uncovered layer (a depth
    multiplier of 2) still gets it; a reference build links no DSP code."""
    _need("qemu-mps2-an386")
    covered = _linked(firmware_build("strided", "qemu-mps2-an386", "dsp").job_runner)
    assert {"tinyfleet_conv2d_s8_dsp", "tinyfleet_depthwise_conv2d_s8_dsp"} <= covered
    assert {"tinyfleet_conv2d_s8_fast", "tinyfleet_depthwise_conv2d_s8_fast"} <= covered
    assert not {"tinyfleet_conv2d_s8", "tinyfleet_depthwise_conv2d_s8"} & covered
    mixed = _linked(firmware_build("convnet", "qemu-mps2-an386", "dsp").job_runner)
    assert {"tinyfleet_depthwise_conv2d_s8", "tinyfleet_max_pool2d_s8_fast"} <= mixed
    reference = _linked(firmware_build("strided", "qemu-mps2-an386", "reference").job_runner)
    assert {"tinyfleet_conv2d_s8", "tinyfleet_depthwise_conv2d_s8"} <= reference
    assert not {name for name in reference if name.endswith(("_dsp", "_fast"))}


@pytest.mark.qemu
@pytest.mark.tf
def test_dsp_flash_is_no_larger_than_the_reference_build_was(
    fixture_models: Any, tmp_path: Any
) -> None:
    """Issue 15, "flash no larger than today's for the same model": the digits backbone's
    DSP images (the Nano's device loop, the M4F job runner that `report` measures) are no
    larger than its reference images as they were built before (``size_opt=False``: every
    source at -O2, full newlib), and the reference images do not grow either."""
    _need("nano33ble")
    _need("qemu-mps2-an386")
    from tinyfleet.device.head import HeadSpec
    from tinyfleet.firmware.device_config import write_device_config
    from tinyfleet.firmware.flash import check_image
    from tinyfleet.firmware.report import flash_and_ram
    from tinyfleet.firmware.targets import TARGETS
    from tinyfleet.firmware.toolchain import cmake_build

    digits = fixture_models["digits"]
    spec = HeadSpec((digits.generated.output_size, 32, 5), "relu", "softmax_ce")
    write_device_config(spec, tmp_path / "device")

    def flash(target: str, kernels: str, size_opt: bool) -> int:
        build = cmake_build(
            target, tmp_path / f"{target}-{kernels}-{size_opt}", digits.model_dir,
            device_config_dir=tmp_path / "device" if target == "nano33ble" else None,
            kernels=kernels, size_opt=size_opt,
        )  # fmt: skip
        if target == "nano33ble":
            assert build.device is not None
            return check_image(build.device, TARGETS[target]).flash_bytes
        assert build.map_file is not None
        return flash_and_ram(build.map_file.read_text())[0]

    for target in ("nano33ble", "qemu-mps2-an386"):
        before = flash(target, "reference", False)
        assert flash(target, "dsp", True) <= before, target
        assert flash(target, "reference", True) <= before, target
