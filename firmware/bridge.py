"""Serial <-> MQTT bridge (placeholder until the firmware device loop lands)."""

from __future__ import annotations

from tinyfleet.errors import UsageError


def run_serial_bridge(port: str, broker: str, fleet: str) -> int:
    """Relay COBS+CRC frames between ``port`` and MQTT (not implemented yet)."""
    raise UsageError(
        f"tinyfleet bridge serial {port}: the serial bridge is not implemented in this "
        f"version (broker {broker}, fleet {fleet})"
    )
