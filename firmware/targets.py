"""Every build target in one table: CPU/FPU flags, memory map, startup, kernels, QEMU.

CMake gets its per-target settings from here (:func:`cmake_args`), the QEMU command
line and the instruction counter's clock come from here, and the generator checks the
arena against ``ram_bytes``. Adding a core is adding a row.

Memory maps are QEMU 7.2's: the mps2 boards (an385/an386/an500) boot from SSRAM at
0x0 with data SSRAM at 0x20000000; the TrustZone boards (an505, an547) boot in Secure
state from the secure alias of their code RAM (0x10000000), with data RAM at a secure
alias too. RAM is capped at 256 KB everywhere, the reference board's (Nano 33 BLE
Sense), so that whatever links in QEMU also fits the board.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from tinyfleet.errors import UsageError

KB = 1024
#: where the Nano 33 BLE Sense's application starts: the Arduino bootloader (BOSSA
#: protocol) occupies flash below it and jumps to the reset vector found here
NANO_APP_OFFSET = 0x10000


@dataclass(frozen=True)
class Target:
    """One row: a core on a QEMU machine or a board."""

    name: str
    core: str
    cpu_flags: tuple[str, ...]
    #: QEMU machine (``-M``), None for the host and for boards
    qemu_machine: str | None
    #: ``dsp``: SMLAD/SXTB16 kernels (cores with the DSP extension); ``reference``: plain C
    kernels: str
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    #: SysTick clock in Hz: under -icount shift=0 one instruction is one ns, so one
    #: tick is 1e9/clock instructions (QEMU's board clocks, see hw/arm/mps2*.c)
    systick_hz: int = 25_000_000
    #: startup source and linker script (``@...@`` filled from this row) under firmware/
    startup: str = "ports/qemu/startup.c"
    ldscript: str = "ports/qemu/cortex_m.ld.in"
    #: sources of the device loop's serial port driver under firmware/ (empty: no device
    #: loop for this row): the mps2 CMSDK UART0, or the nRF52840's UARTE0 and sensors
    device_port: tuple[str, ...] = ()
    #: QEMU semihosting (printf, host files, exit status); a board has none
    semihosting: bool = True
    #: a board's twin in QEMU (same core and flags): where `report` counts its instructions
    measured_on: str | None = None

    @property
    def device_loop(self) -> bool:
        return bool(self.device_port)


_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("host", "host CPU", (), None, "reference", 0, 0, 0, (1 << 31) - 1),
        Target(
            "qemu-mps2-an385", "Cortex-M3", ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
            "mps2-an385", "reference", 0x0, 1024 * KB, 0x20000000, 256 * KB,
        ),
        Target(
            "qemu-mps2-an386", "Cortex-M4F", _M4F, "mps2-an386", "dsp",
            0x0, 1024 * KB, 0x20000000, 256 * KB,
            device_port=("ports/qemu/tinyfleet_device_qemu.c",),
        ),
        Target(
            "qemu-mps2-an500", "Cortex-M7",
            ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
            "mps2-an500", "dsp", 0x0, 1024 * KB, 0x20000000, 256 * KB,
        ),
        Target(
            "qemu-mps2-an505", "Cortex-M33",
            ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
            "mps2-an505", "dsp", 0x10000000, 1024 * KB, 0x38000000, 256 * KB,
            systick_hz=20_000_000,
        ),
        Target(
            "qemu-mps3-an547", "Cortex-M55",
            ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
            "mps3-an547", "dsp", 0x10000000, 512 * KB, 0x30000000, 256 * KB,
            systick_hz=32_000_000,
        ),
        Target(
            # The Arduino bootloader owns flash below 0x10000: the image starts there.
            "nano33ble", "Cortex-M4F (nRF52840)", _M4F, None, "dsp",
            NANO_APP_OFFSET, 1024 * KB - NANO_APP_OFFSET, 0x20000000, 256 * KB,
            systick_hz=64_000_000, startup="ports/arduino/startup_nrf52840.c",
            device_port=(
                "ports/arduino/tinyfleet_device_nano.c", "ports/arduino/nrf52840_uarte.c",
                "ports/arduino/nano33ble_sensors.c",
            ),
            semihosting=False, measured_on="qemu-mps2-an386",
        ),
    )
}  # fmt: skip
QEMU_TARGETS = tuple(name for name, t in TARGETS.items() if t.qemu_machine)
#: the most RAM any device target has: the arena limit when no target is named
MAX_DEVICE_RAM = max(t.ram_bytes for name, t in TARGETS.items() if name != "host")
DEFAULT_QEMU_TARGET = "qemu-mps2-an386"


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}") from None


def insns_per_tick(target: Target) -> tuple[int, int]:
    """(num, shift): one SysTick tick is num / 2**shift instructions under -icount
    shift=0. A power-of-two denominator keeps 64-bit division (a libgcc call) out of
    the counter."""
    ratio = Fraction(10**9, target.systick_hz)
    shift = ratio.denominator.bit_length() - 1
    if ratio.denominator != 1 << shift:
        raise ValueError(f"{target.name}: 1e9/{target.systick_hz} needs a power-of-two denominator")
    return ratio.numerator, shift


def cmake_args(target: Target, kernels: str | None = None) -> list[str]:
    """``-D`` options that carry one row into firmware/CMakeLists.txt."""
    args = [
        f"-DTINYFLEET_TARGET={target.name}",
        f"-DTINYFLEET_KERNELS={kernels or target.kernels}",
    ]
    if target.name == "host":
        return args
    return args + [
        "-DTINYFLEET_CPU_FLAGS=" + ";".join(target.cpu_flags),
        f"-DTINYFLEET_STARTUP={target.startup}",
        f"-DTINYFLEET_LDSCRIPT={target.ldscript}",
        f"-DTINYFLEET_FLASH_ORIGIN={target.flash_origin:#x}",
        f"-DTINYFLEET_FLASH_BYTES={target.flash_bytes}",
        f"-DTINYFLEET_RAM_ORIGIN={target.ram_origin:#x}",
        f"-DTINYFLEET_RAM_BYTES={target.ram_bytes}",
        "-DTINYFLEET_INSNS_PER_TICK={}/{}".format(*insns_per_tick(target)),
        f"-DTINYFLEET_SEMIHOSTING={'ON' if target.semihosting else 'OFF'}",
        f"-DTINYFLEET_DEVICE_LOOP={'ON' if target.device_loop else 'OFF'}",
        "-DTINYFLEET_DEVICE_PORT=" + ";".join(target.device_port),
    ]
