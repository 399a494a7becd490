"""MQTT topic names: ``tinyfleet/<fleet>/<device_id>/<kind>``."""

from __future__ import annotations

import re

from tinyfleet.device.wire.errors import CodecError
from tinyfleet.device.wire.types import MAX_DEVICE_ID

TOPIC_ROOT = "tinyfleet"
TOPIC_KINDS = ("task", "update", "status", "description")


def _check_segment(value: str, what: str) -> str:
    if not value or any(c in value for c in "/+#\0") or len(value.encode()) > MAX_DEVICE_ID:
        raise CodecError(f"{what} {value!r} must be 1..64 bytes without '/', '+', '#'")
    return value


def topic(fleet: str, device_id: str, kind: str) -> str:
    """``tinyfleet/<fleet>/<device_id>/<kind>`` with kind in task|update|status|description."""
    if kind not in TOPIC_KINDS:
        raise CodecError(f"unknown topic kind {kind!r}; choose from {TOPIC_KINDS}")
    return f"{TOPIC_ROOT}/{_check_segment(fleet, 'fleet')}/{_check_segment(device_id, 'device id')}/{kind}"


def parse_topic(name: str) -> tuple[str, str, str]:
    """Split a tinyfleet topic into ``(fleet, device_id, kind)``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[3] not in TOPIC_KINDS:
        raise CodecError(f"not a tinyfleet topic: {name!r}")
    return parts[1], parts[2], parts[3]


def device_ids(n_devices: int, prefix: str = "sim") -> list[str]:
    """``sim-0000, sim-0001, ...``: device ``i`` has index ``i`` (the fleet's naming rule)."""
    return [device_id_of(i, prefix) for i in range(int(n_devices))]


def device_id_of(index: int, prefix: str = "sim") -> str:
    """``device_ids(index + 1)[index]`` without building the list (one per round)."""
    return f"{prefix}-{int(index):04d}"


def device_index_from_id(device_id: str) -> int:
    """``sim-0042`` -> 42: the trailing number of a device id."""
    match = re.search(r"(\d+)$", device_id)
    if match is None:
        raise CodecError(f"device id {device_id!r} has no trailing index: pass --device-index")
    return int(match.group(1))
