"""The one table of boards a tinyfleet device can be, and the TFLM operators it runs.

A device's self-description (docs/protocol.md, DEVICE DESCRIPTION) is built from a row
here: the firmware's serial bridge describes the board it runs on, a simulated Python
device claims the reference board's budget, and ``firmware report`` checks whether a
model fits each board. The knowledge graph's matchmaking then reads these descriptions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyfleet.errors import UsageError


@dataclass(frozen=True)
class Board:
    """What a device description says about the hardware."""

    board: str
    mcu: str
    cpu: str
    clock_hz: int
    ram_bytes: int
    flash_bytes: int
    sensors: tuple[str, ...]

    def description_fields(self) -> dict[str, object]:
        """The hardware fields of a DEVICE DESCRIPTION."""
        fields = asdict(self)
        fields["sensors"] = list(self.sensors)
        return fields


#: The reference board (DESIGN.md): nRF52840, Cortex-M4F at 64 MHz, 256 KB RAM, 1 MB flash.
NANO33BLE = Board(
    "Arduino Nano 33 BLE Sense",
    "nRF52840",
    "cortex-m4f",
    64_000_000,
    262_144,
    1_048_576,
    ("microphone", "accelerometer", "temperature", "humidity"),
)

BOARDS: dict[str, Board] = {
    "nano33ble": NANO33BLE,
    "qemu-mps2-an386": Board(
        "QEMU mps2-an386",
        "ARM MPS2 AN386 (emulated)",
        "cortex-m4f",
        25_000_000,
        262_144,  # what the linker script gives the firmware
        1_048_576,
        ("none",),
    ),
    # A Python device on a host claims the reference board's budget, so matchmaking treats
    # it like that board.
    "simulated": Board(
        "tinyfleet simulated device",
        "host",
        "host-python",
        64_000_000,
        262_144,
        1_048_576,
        ("none",),
    ),
}

#: The TFLM builtin operators our exported models use (what a simulated device runs).
MODEL_OPERATORS = (
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "RESHAPE",
    "SOFTMAX",
)


def get_board(name: str) -> Board:
    """The board called ``name`` (a key of :data:`BOARDS`)."""
    if name not in BOARDS:
        raise UsageError(f"unknown board {name!r}; choose from {', '.join(BOARDS)}")
    return BOARDS[name]
