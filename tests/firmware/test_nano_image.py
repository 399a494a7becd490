"""The Nano 33 BLE Sense's device-loop image and the commands that flash it.

No board here: the tests check the image itself (vector table at the application
offset 0x10000, initial stack pointer inside RAM, reset vector a Thumb address inside
flash, UARTE0's interrupt vector, size within the board) and the exact bossac/pyOCD
command lines, run against recording stand-ins for the tools.
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tinyfleet.cli import main
from tinyfleet.errors import InputFileError
from tinyfleet.firmware.flash import bossac_argv, check_image, load_segments, pyocd_argv
from tinyfleet.firmware.targets import NANO_APP_OFFSET, get_target
from tinyfleet.firmware.toolchain import missing_tools

NANO = get_target("nano33ble")
HEAD = ["--head-sizes", "1,40,40,1", "--activation", "tanh", "--loss", "mse"]


def _need() -> None:
    missing = missing_tools("nano33ble")
    if missing:
        pytest.skip(f"toolchain for nano33ble absent: {', '.join(missing)} not on PATH")


@pytest.fixture(scope="module")
def nano_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The device loop for the Nano with a float head (no backbone: needs no TF)."""
    _need()
    out = tmp_path_factory.mktemp("nano")
    assert main(["firmware", "build", "--target", "nano33ble", *HEAD, "--build-dir", str(out)]) == 0
    return out


def _symbol(elf: Path, name: str) -> int:
    text = subprocess.run(
        ["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {elf}")


@pytest.mark.firmware
def test_table_places_the_image_after_the_bootloader() -> None:
    assert NANO_APP_OFFSET == 0x10000
    assert (NANO.flash_origin, NANO.flash_bytes) == (0x10000, 1024 * 1024 - 0x10000)
    assert (NANO.ram_origin, NANO.ram_bytes) == (0x20000000, 256 * 1024)
    assert NANO.device_loop and not NANO.semihosting and NANO.qemu_machine is None


@pytest.mark.firmware
def test_device_image_vector_table(nano_build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elf = nano_build / "tinyfleet_device.elf"
    info = check_image(elf, NANO)
    data = elf.read_bytes()
    segments = load_segments(data)
    first = min((s for s in segments if s.filesz), key=lambda s: s.paddr)
    assert first.paddr == 0x10000 == info.load_origin
    sp, reset = struct.unpack_from("<II", data, first.offset)
    assert (sp, reset) == (info.initial_sp, info.reset_vector)
    assert sp == _symbol(elf, "_estack") and 0x20000000 < sp <= 0x20040000 and sp % 8 == 0
    assert reset & 1 and reset - 1 == _symbol(elf, "Reset_Handler")
    assert 0x10000 <= reset - 1 < 0x100000
    # IRQ 2 (UARTE0) runs the driver's handler, the others the fault handler
    vectors = struct.unpack_from("<64I", data, first.offset)
    assert vectors[16 + 2] - 1 == _symbol(elf, "UARTE0_UART0_IRQHandler")
    assert vectors[16 + 3] - 1 == _symbol(elf, "Default_Handler")
    assert vectors[3] - 1 == _symbol(elf, "Fault_Handler")
    # the UARTE driver and the device loop are linked in; no semihosting
    for name in ("tinyfleet_uarte_init", "tinyfleet_device_run", "tinyfleet_head_sgd_step_top"):
        _symbol(elf, name)
    assert b"rdimon" not in data and info.flash_bytes < 64 * 1024 and info.ram_bytes < 128 * 1024
    image = (nano_build / "tinyfleet_device.bin").read_bytes()
    assert len(image) == info.flash_bytes and image[:256] == data[first.offset : first.offset + 256]


@pytest.mark.firmware
def test_check_image_rejects_broken_images(nano_build: Path, tmp_path: Path) -> None:
    elf = nano_build / "tinyfleet_device.elf"
    data = bytearray(elf.read_bytes())
    first = min((s for s in load_segments(bytes(data)) if s.filesz), key=lambda s: s.paddr)
    cases = {
        "initial stack pointer 0x10000000 is not inside RAM": (0, 0x10000000),
        "reset vector 0x10718 is not a Thumb address": (4, 0x10718),
        "reset vector 0x1 is not a Thumb address inside flash": (4, 0x1),
    }
    for message, (where, value) in cases.items():
        bad = bytearray(data)
        struct.pack_into("<I", bad, first.offset + where, value)
        path = tmp_path / "bad.elf"
        path.write_bytes(bytes(bad))
        with pytest.raises(InputFileError, match=message):
            check_image(path, NANO)
    # an image linked at 0x0 (a QEMU row's map) would overwrite the bootloader
    with pytest.raises(InputFileError, match="starts at 0x10000, not at .* offset 0x0"):
        check_image(elf, get_target("qemu-mps2-an386"))
    (tmp_path / "x.elf").write_bytes(b"\x7fELF" + bytes(60))
    with pytest.raises(InputFileError, match="not a little-endian 32-bit ARM ELF"):
        check_image(tmp_path / "x.elf", NANO)


def test_flash_command_lines() -> None:
    assert bossac_argv("/dev/ttyACM0", "b/img.bin") == [
        "bossac", "--port=/dev/ttyACM0", "-U", "-i", "-e", "-w", "-v", "b/img.bin", "-R",
    ]  # fmt: skip
    assert pyocd_argv("b/img.elf") == [
        "pyocd", "flash", "--target", "nrf52840", "--erase", "sector", "b/img.elf",
    ]  # fmt: skip
    assert pyocd_argv("b/img.elf", "0240000034") == [
        "pyocd", "flash", "--target", "nrf52840", "--erase", "sector", "--uid", "0240000034",
        "b/img.elf",
    ]  # fmt: skip


def _recorder(bin_dir: Path, name: str) -> Path:
    """A stand-in for the flashing tool that records its argv (one per line)."""
    log = bin_dir / f"{name}.argv"
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {log}\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return log


@pytest.mark.firmware
@pytest.mark.parametrize("how", ["port", "probe"])
def test_flash_runs_the_exact_command(
    nano_build: Path, tmp_path: Path, monkeypatch: Any, how: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = "bossac" if how == "port" else "pyocd"
    log = _recorder(bin_dir, tool)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (nano_build / "tinyfleet_device.bin").unlink(missing_ok=True)  # flash writes it again
    args = ["--port", "/dev/ttyACM7"] if how == "port" else ["--probe", "0240000034"]
    assert main(["firmware", "flash", "--target", "nano33ble", *args,
                 "--build-dir", str(nano_build)]) == 0  # fmt: skip
    elf = nano_build / "tinyfleet_device.elf"
    expected = (
        bossac_argv("/dev/ttyACM7", elf.with_suffix(".bin"))
        if how == "port"
        else pyocd_argv(elf, "0240000034")
    )
    assert [tool, *log.read_text().splitlines()] == expected
    assert (nano_build / "tinyfleet_device.bin").exists() == (how == "port")
    if how == "port":
        assert (nano_build / "tinyfleet_device.bin").stat().st_size == check_image(
            elf, NANO
        ).flash_bytes


@pytest.mark.firmware
def test_flash_without_the_tool_is_one_line(
    nano_build: Path, tmp_path: Path, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for args, tool in ((["--port", "/dev/ttyACM0"], "bossac"), (["--probe"], "pyocd")):
        code = main(["firmware", "flash", "--target", "nano33ble", *args,
                     "--build-dir", str(nano_build)])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            code == 2 and len(err) == 1 and err[0].startswith(f"tinyfleet: error: {tool} not found")
        )
    # no image yet: one line that says how to build it
    code = main(["firmware", "flash", "--target", "nano33ble", "--port", "/dev/ttyACM0",
                 "--build-dir", str(tmp_path / "none")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "firmware build --target nano33ble" in err[0]


@pytest.mark.firmware
@pytest.mark.tf
def test_device_image_with_the_digits_backbone_fits(
    fixture_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _need()
    model = str(fixture_models["digits"].path)
    out = tmp_path / "nano"
    assert main(["firmware", "build", "--target", "nano33ble", "--model", model,
                 "--head-sizes", "32,32,5", "--build-dir", str(out)]) == 0  # fmt: skip
    assert "board image:" in capsys.readouterr().out
    info = check_image(out / "tinyfleet_device.elf", NANO)
    _symbol(out / "tinyfleet_device.elf", "tinyfleet_model_invoke")
    assert info.flash_bytes <= NANO.flash_bytes and info.ram_bytes <= NANO.ram_bytes


@pytest.mark.qemu
def test_report_for_the_board_uses_its_image_and_its_qemu_twin(
    nano_build: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    if missing_tools("qemu-mps2-an386"):
        pytest.skip("qemu-system-arm absent")
    card = tmp_path / "model_card.json"
    head = {"layer_sizes": [1, 40, 40, 1], "activation": "tanh", "loss": "mse"}
    card.write_text(json.dumps({"name": "sine", "tflite_file": None, "head": head}))
    argv = ["firmware", "report", str(card), "--json", "--kernels", "reference"]
    assert main([*argv, "--target", "nano33ble", "--target", "qemu-mps2-an386"]) == 0
    board, twin = json.loads(capsys.readouterr().out)
    assert (board["target"], twin["target"]) == ("nano33ble", "qemu-mps2-an386")
    # the same image `build` makes for this head, not the QEMU benchmark's
    image = check_image(nano_build / "tinyfleet_device.elf", NANO)
    assert (board["flash_bytes"], board["ram_bytes"]) == (image.flash_bytes, image.ram_bytes)
    assert board["flash_bytes"] != twin["flash_bytes"]
    # instructions counted on the twin: same core, flags and kernels
    assert board["insns_per_sgd_step"] == twin["insns_per_sgd_step"] > 10_000
    assert board["energy_uj_per_sgd_step"] == twin["energy_uj_per_sgd_step"] > 0
