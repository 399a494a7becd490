"""Flashing a board: check the image, then the exact ``bossac`` or pyOCD command line.

The Nano 33 BLE Sense's image (``tinyfleet_device.elf`` built for ``nano33ble``) is
checked before anything is written to a board: it must load at the application offset
(0x10000, after the Arduino bootloader), its vector table's initial stack pointer must
lie in RAM and its reset vector (a Thumb address, bit 0 set) in the application's
flash, and flash and RAM must fit the board. Both come from the target table.

Two ways onto the board:

* the Arduino bootloader over USB (``bossac``, SAM-BA protocol): double-tap the reset
  button (the LED pulses), then ``bossac --port=PORT -U -i -e -w -v IMAGE.bin -R``, the
  command the Arduino core's upload recipe runs. The bootloader places the image at
  0x10000 itself. Only BOSSA builds with nRF52 support talk to it (the Arduino fork,
  1.9.1-arduino2 and later, which the Arduino core installs); Debian's ``bossa-cli``
  (1.9.1) is upstream BOSSA without it.
* an SWD probe (``pyocd flash --target nrf52840 --erase sector IMAGE.elf``): sector
  erase rewrites only the sectors the image covers, so the bootloader below 0x10000
  stays. pyOCD is on PyPI (``pip install pyocd``).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinyfleet.errors import InputFileError, MissingToolError
from tinyfleet.firmware.targets import Target

OBJCOPY = "arm-none-eabi-objcopy"
_PT_LOAD = 1


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD program header: load (flash) address, run address, sizes."""

    paddr: int
    vaddr: int
    offset: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`check_image` read from an ELF image."""

    load_origin: int
    initial_sp: int
    reset_vector: int
    flash_bytes: int
    ram_bytes: int


def load_segments(data: bytes) -> list[Segment]:
    """PT_LOAD segments of a little-endian 32-bit ARM ELF (``InputFileError`` otherwise)."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise InputFileError("not an ELF file")
    if data[4] != 1 or data[5] != 1 or struct.unpack_from("<H", data, 18)[0] != 40:
        raise InputFileError("not a little-endian 32-bit ARM ELF")
    (phoff,) = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    if phoff + phnum * phentsize > len(data) or phentsize < 32:
        raise InputFileError("ELF program headers lie outside the file")
    segments = []
    for i in range(phnum):
        kind, offset, vaddr, paddr, filesz, memsz = struct.unpack_from(
            "<6I", data, phoff + i * phentsize
        )
        if kind == _PT_LOAD and (filesz or memsz):
            if offset + filesz > len(data):
                raise InputFileError("an ELF segment lies outside the file")
            segments.append(Segment(paddr, vaddr, offset, filesz, memsz))
    if not segments:
        raise InputFileError("the ELF has nothing to load")
    return segments


def check_image(elf: str | Path, target: Target) -> ImageInfo:
    """Check an image against ``target``'s memory map; one-line ``InputFileError`` if not.

    Flash is every byte stored in flash (code, constants, ``.data``'s initial values);
    RAM is every segment that runs from RAM (``.data``, ``.bss``, heap, stack).
    """
    path = Path(elf)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        segments = load_segments(data)
    except InputFileError as error:
        raise InputFileError(f"{path}: {error}") from None
    flash_end = target.flash_origin + target.flash_bytes
    ram_end = target.ram_origin + target.ram_bytes
    stored = [s for s in segments if s.filesz]
    origin = min(s.paddr for s in stored)
    if origin != target.flash_origin:
        raise InputFileError(
            f"{path}: image starts at {origin:#x}, not at {target.name}'s application "
            f"offset {target.flash_origin:#x}"
        )
    first = next(s for s in stored if s.paddr == origin)
    if first.filesz < 8:
        raise InputFileError(f"{path}: no vector table at {origin:#x}")
    sp, reset = struct.unpack_from("<II", data, first.offset)
    if not target.ram_origin < sp <= ram_end:
        raise InputFileError(f"{path}: initial stack pointer {sp:#x} is not inside RAM")
    if not (reset & 1 and target.flash_origin <= reset - 1 < flash_end):
        raise InputFileError(
            f"{path}: reset vector {reset:#x} is not a Thumb address inside flash "
            f"[{target.flash_origin:#x}, {flash_end:#x})"
        )
    flash = max(s.paddr + s.filesz for s in stored) - origin
    if origin + flash > flash_end:
        raise InputFileError(
            f"{path}: {flash} B of flash from {origin:#x} exceed the board's {target.flash_bytes} B"
        )
    in_ram = [s for s in segments if target.ram_origin <= s.vaddr < ram_end]
    ram = max((s.vaddr + s.memsz for s in in_ram), default=target.ram_origin) - target.ram_origin
    if any(s.vaddr + s.memsz > ram_end for s in in_ram):
        raise InputFileError(f"{path}: {ram} B of RAM exceed the board's {target.ram_bytes} B")
    return ImageInfo(origin, sp, reset, flash, ram)


def write_bin(elf: str | Path, out: str | Path | None = None) -> Path:
    """The raw image ``bossac`` writes (``objcopy -O binary``: bytes from the lowest
    load address on)."""
    if shutil.which(OBJCOPY) is None:
        raise MissingToolError(
            f"{OBJCOPY} not found on PATH (install with: apt-get install "
            "--no-install-recommends gcc-arm-none-eabi)"
        )
    src = Path(elf)
    dst = Path(out) if out else src.with_suffix(".bin")
    proc = subprocess.run(
        [OBJCOPY, "-O", "binary", str(src), str(dst)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise InputFileError(f"{OBJCOPY} failed on {src}: {proc.stderr.strip()[:200]}")
    return dst


def bossac_argv(port: str, image_bin: str | Path) -> list[str]:
    """Write through the Arduino bootloader on ``port`` (the Arduino core's recipe):
    ``-U`` native USB, ``-i`` info, ``-e`` erase, ``-w`` write, ``-v`` verify, ``-R`` reset."""
    return ["bossac", f"--port={port}", "-U", "-i", "-e", "-w", "-v", str(image_bin), "-R"]


def pyocd_argv(elf: str | Path, uid: str | None = None) -> list[str]:
    """Write through an SWD probe; the ELF carries its addresses, sector erase keeps
    the bootloader."""
    argv = ["pyocd", "flash", "--target", "nrf52840", "--erase", "sector"]
    if uid:
        argv += ["--uid", uid]
    return [*argv, str(elf)]


def require_program(argv: list[str], install: str) -> None:
    """One clear line when the flashing tool is absent."""
    if shutil.which(argv[0]) is None:
        raise MissingToolError(f"{argv[0]} not found on PATH (install with: {install})")


BOSSAC_INSTALL = (
    "the Arduino fork, bossac 1.9.1-arduino2+ (arduino-cli core install arduino:mbed_nano); "
    "Debian's bossa-cli lacks nRF52 support"
)
PYOCD_INSTALL = "pip install pyocd"
