"""Decoding reads array values straight out of the payload (no copy), read-only."""

from __future__ import annotations

import numpy as np

from tinyfleet.device import wire
from tinyfleet.device.wire import MessageType


def test_decoded_values_are_read_only_views_of_the_payload() -> None:
    values = np.linspace(-1.0, 1.0, 37, dtype=np.float32)
    payload = wire.encode_message(
        MessageType.REPLY,
        round=2,
        msg_id=9,
        device_id="dev-1",
        fields={"loss": 0.5},
        arrays=[wire.float32_array("0", values), wire.int8_array("q", values)],
    )
    message = wire.decode_message(payload)
    raw = np.frombuffer(payload, dtype=np.uint8)
    for array in message.arrays:
        assert np.shares_memory(array.values, raw)
        assert not array.values.flags.writeable
    assert message.arrays[0].values.tobytes() == values.tobytes()
    # to_float32 gives the caller its own writable copy.
    dense = message.arrays[0].to_float32()
    assert dense.flags.writeable and not np.shares_memory(dense, raw)
