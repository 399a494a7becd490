"""Bounded memory under a chunk flood (issue 9: 300 chunk starts announcing 1 MiB each took
the server from 97 MB to 362 MB): reassembly holds only the bytes that arrived, capped per
device and in all, and incomplete messages expire."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tinyfleet.device import wire
from tinyfleet.device.wire import Chunk, ChunkError

pytestmark = pytest.mark.faults
MIB = 1 << 20


def start(device: str, msg_id: int, data: bytes = b"x" * 56) -> bytes:
    """Chunk 0 of a message that announces 1 MiB in 20,000 chunks."""
    return wire.encode_chunk(Chunk(1, msg_id, device, 0, 20_000, MIB, 0, data))


def test_300_chunk_starts_announcing_1_mib_keep_memory_bounded() -> None:
    assembler = wire.ChunkAssembler(max_pending=256)
    payloads = [start(f"d-{i % 3:04d}", i) for i in range(300)]
    sent = sum(len(p) for p in payloads)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for payload in payloads:
        assert assembler.add(payload) is None
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert assembler.pending_messages == 256  # max_pending: the 44 oldest were dropped
    assert assembler.counters.evicted == 44
    assert assembler.pending_bytes == 256 * 56  # only the bytes that arrived
    assert sent < 40_000 and held < 512 * 1024, held  # was 300 x 1 MiB allocated up front


def test_per_device_and_total_caps_and_timeout() -> None:
    now = [0.0]
    assembler = wire.ChunkAssembler(
        max_pending=100, max_device_bytes=200, max_total_bytes=400, timeout_s=10.0,
        clock=lambda: now[0],
    )  # fmt: skip
    for i in range(3):
        assembler.add(start("greedy-0000", i))  # 168 bytes < 200
    with pytest.raises(ChunkError):  # the device's partial messages would pass 200 bytes
        assembler.add(start("greedy-0000", 3))
    assert assembler.device_bytes("greedy-0000") == 168
    assert assembler.counters.over_device_cap == 1
    for i in range(10):
        assembler.add(start(f"other-{i:04d}", i))
    assert assembler.pending_bytes <= 400 and assembler.counters.evicted > 0
    now[0] = 11.0
    assert assembler.expire() == assembler.counters.expired > 0
    assert assembler.pending_messages == 0 and assembler.pending_bytes == 0


def test_device_cap_raises_chunk_error_and_honest_messages_still_complete() -> None:
    assembler = wire.ChunkAssembler(max_device_bytes=100)
    assembler.add(start("d-0000", 1))
    with pytest.raises(ChunkError, match="over 100 bytes"):
        assembler.add(start("d-0000", 2))
    encoded = wire.encode_message(
        wire.MessageType.REPLY, round=1, msg_id=9, device_id="e-0000",
        arrays=[wire.float32_array("phi", np.arange(200, dtype=np.float32))],
    )  # fmt: skip
    pieces = wire.split_message(encoded, 128)
    assembler = wire.ChunkAssembler()
    got = [assembler.add(p) for p in reversed(pieces)]  # any order
    assert got[-1] is not None and got[-1].msg_id == 9
    assert assembler.counters.completed == 1
