"""Reassembly of chunked messages, with bounded memory.

Chunks are kept as they arrive (nothing is allocated for the announced total up front),
and what partial messages may hold is capped: per device (``max_device_bytes``), in all
(``max_total_bytes``) and in number (``max_pending``); a message not completed within
``timeout_s`` is dropped. So a flood of chunk starts announcing 1 MiB each costs only
the bytes actually sent, up to the caps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tinyfleet.device.wire.decode import decode, decode_message
from tinyfleet.device.wire.errors import ChunkError
from tinyfleet.device.wire.types import DEFAULT_MAX_MESSAGE_BYTES, Chunk, WireMessage

DEFAULT_MAX_DEVICE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 120.0


@dataclass
class _Pending:
    count: int
    total_len: int
    started: float
    pieces: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (offset, data)
    size: int = 0


@dataclass
class AssemblerCounters:
    completed: int = 0
    expired: int = 0  # incomplete past the timeout
    evicted: int = 0  # dropped to stay under max_pending / max_total_bytes
    over_device_cap: int = 0  # refused: the device's partial messages hold too much


class ChunkAssembler:
    """Reassembles chunked messages, keyed by ``(device_id, msg_id)``.

    ``add`` returns the decoded whole message once every chunk has arrived, else None.
    A repeated chunk (MQTT QoS 1 may redeliver) is ignored; inconsistent chunks raise
    :class:`ChunkError` and drop that message's partial state. A chunk that would take a
    device's partial messages over ``max_device_bytes`` raises :class:`ChunkError` and
    drops that message; beyond ``max_pending`` messages or ``max_total_bytes`` the oldest
    partial message (of any device) is dropped; messages older than ``timeout_s`` are
    dropped. ``clock`` is for tests.
    """

    def __init__(
        self,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_pending: int = 64,
        *,
        max_device_bytes: int = DEFAULT_MAX_DEVICE_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(max_pending, max_device_bytes, max_total_bytes) < 1 or not timeout_s > 0:
            raise ValueError("chunk assembler caps and timeout must be positive")
        self.max_message_bytes = max_message_bytes
        self.max_pending = max_pending
        self.max_device_bytes = max_device_bytes
        self.max_total_bytes = max_total_bytes
        self.timeout_s = timeout_s
        self.clock = clock
        self.counters = AssemblerCounters()
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._device_bytes: dict[str, int] = {}
        self._total = 0

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Chunk data bytes held for incomplete messages."""
        return self._total

    def device_bytes(self, device_id: str) -> int:
        return self._device_bytes.get(device_id, 0)

    def _drop(self, key: tuple[str, int]) -> None:
        pend = self._pending.pop(key, None)
        if pend is None:
            return
        self._total -= pend.size
        left = self._device_bytes.get(key[0], 0) - pend.size
        if left > 0:
            self._device_bytes[key[0]] = left
        else:
            self._device_bytes.pop(key[0], None)

    def expire(self) -> int:
        """Drop incomplete messages older than the timeout; return how many."""
        now = self.clock()
        old = [k for k, p in self._pending.items() if now - p.started > self.timeout_s]
        for key in old:
            self._drop(key)
        self.counters.expired += len(old)
        return len(old)

    def add(self, payload: bytes) -> WireMessage | None:
        return self.add_decoded(decode(payload, self.max_message_bytes))

    def add_decoded(self, item: WireMessage | Chunk) -> WireMessage | None:
        """:meth:`add` for a payload the caller already decoded (with this limit)."""
        if isinstance(item, WireMessage):
            return item
        self.expire()
        key = (item.device_id, item.msg_id)
        pend = self._pending.get(key)
        if pend is None:
            while len(self._pending) >= self.max_pending:
                self._drop(next(iter(self._pending)))
                self.counters.evicted += 1
            pend = _Pending(item.count, item.total_len, self.clock())
            self._pending[key] = pend
        if pend.count != item.count or pend.total_len != item.total_len:
            self._drop(key)
            raise ChunkError(f"chunk {item.index} of message {item.msg_id} disagrees on totals")
        if item.index in pend.pieces:
            if pend.pieces[item.index] != (item.offset, item.data):
                self._drop(key)
                raise ChunkError(f"chunk {item.index} of message {item.msg_id} sent twice, differs")
            return None
        size = len(item.data)
        if self.device_bytes(item.device_id) + size > self.max_device_bytes:
            self._drop(key)
            self.counters.over_device_cap += 1
            raise ChunkError(
                f"device {item.device_id}: partial messages over {self.max_device_bytes} bytes"
            )
        while self._total + size > self.max_total_bytes and len(self._pending) > 1:
            oldest = next(k for k in self._pending if k != key)
            self._drop(oldest)
            self.counters.evicted += 1
        pend.pieces[item.index] = (item.offset, bytes(item.data))
        pend.size += size
        self._total += size
        self._device_bytes[item.device_id] = self.device_bytes(item.device_id) + size
        if len(pend.pieces) < pend.count:
            return None
        self._drop(key)
        spans = sorted(pend.pieces.values())
        cursor = 0
        for start, data in spans:
            if start != cursor:
                raise ChunkError(f"chunks of message {item.msg_id} leave gaps or overlap")
            cursor += len(data)
        if cursor != pend.total_len:
            raise ChunkError(f"chunks of message {item.msg_id} do not cover its length")
        inner = decode_message(b"".join(data for _, data in spans), self.max_message_bytes)
        if inner.msg_id != item.msg_id or inner.device_id != item.device_id:
            raise ChunkError("reassembled message does not match its chunks' id")
        self.counters.completed += 1
        return inner
