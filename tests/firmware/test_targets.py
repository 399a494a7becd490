"""The target table: every core runs, counts instructions exactly, and never fails silently."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from tinyfleet.firmware.cli import TARGET_NAMES
from tinyfleet.firmware.jobs import JobError, run_job
from tinyfleet.firmware.targets import TARGETS, cmake_args


def test_cli_lists_exactly_the_table() -> None:
    assert set(TARGET_NAMES) == set(TARGETS)


def test_cmake_args_carry_one_row() -> None:
    m3 = cmake_args(TARGETS["qemu-mps2-an385"])
    assert "-DTINYFLEET_CPU_FLAGS=-mcpu=cortex-m3;-mthumb;-mfloat-abi=soft" in m3
    assert "-DTINYFLEET_KERNELS=reference" in m3  # no DSP extension on the M3
    m33 = cmake_args(TARGETS["qemu-mps2-an505"], kernels="reference")
    assert "-DTINYFLEET_KERNELS=reference" in m33 and "-DTINYFLEET_FLASH_ORIGIN=0x10000000" in m33
    assert cmake_args(TARGETS["host"]) == [
        "-DTINYFLEET_TARGET=host",
        "-DTINYFLEET_KERNELS=reference",
    ]


@pytest.mark.qemu
@pytest.mark.parametrize("target", ["qemu-mps2-an385", "qemu-mps2-an505"])
def test_instruction_counter_on_other_cores(target: str, plain_runners: dict[str, Path]) -> None:
    if target not in plain_runners:
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm / cmake absent")
    machine = TARGETS[target].qemu_machine
    assert machine is not None
    n = 123457
    result, _ = run_job(plain_runners[target], b"CALB" + struct.pack("<i", n), qemu=True,
                        icount=True, machine=machine)  # fmt: skip
    (counted,) = struct.unpack("<I", result)
    # the M33's SysTick runs at 20 MHz: one tick is 50 instructions
    assert abs(counted - 2 * n) <= 1e9 / TARGETS[target].systick_hz


@pytest.mark.qemu
def test_fault_is_a_loud_nonzero_exit(plain_runners: dict[str, Any]) -> None:
    # The Cortex-M4F (hard float) image on a Cortex-M3 faults at its first FPU
    # instruction; QEMU used to exit 0 with no result.
    if "qemu" not in plain_runners:
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm / cmake absent")
    with pytest.raises(JobError, match=r"exited 99: tinyfleet: fault \(exception 03\)"):
        run_job(plain_runners["qemu"], b"CALB" + struct.pack("<i", 10), qemu=True,
                machine="mps2-an385", timeout=60)  # fmt: skip


@pytest.mark.qemu
def test_exit_without_result_is_an_error(plain_runners: dict[str, Any]) -> None:
    # an unknown job kind: the runner stops without writing a result
    if "qemu" not in plain_runners:
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm / cmake absent")
    with pytest.raises(JobError):
        run_job(plain_runners["qemu"], b"NOPE", qemu=True, timeout=60)
