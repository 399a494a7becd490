"""Reassembly of chunked messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from tinyfleet.device.wire.decode import decode, decode_message
from tinyfleet.device.wire.errors import ChunkError
from tinyfleet.device.wire.types import DEFAULT_MAX_MESSAGE_BYTES, WireMessage


@dataclass
class _Pending:
    count: int
    total_len: int
    buffer: bytearray
    seen: dict[int, tuple[int, int]] = field(default_factory=dict)


class ChunkAssembler:
    """Reassembles chunked messages, keyed by ``(device_id, msg_id)``.

    ``add`` returns the decoded whole message once every chunk has arrived, else None.
    A repeated chunk (MQTT QoS 1 may redeliver) is ignored; inconsistent chunks raise
    :class:`ChunkError` and drop that message's partial state. At most ``max_pending``
    messages are kept; the oldest is dropped beyond that.
    """

    def __init__(
        self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_pending: int = 64
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_pending = max_pending
        self._pending: dict[tuple[str, int], _Pending] = {}

    def add(self, payload: bytes) -> WireMessage | None:
        item = decode(payload, self.max_message_bytes)
        if isinstance(item, WireMessage):
            return item
        key = (item.device_id, item.msg_id)
        pend = self._pending.get(key)
        if pend is None:
            while len(self._pending) >= self.max_pending:
                self._pending.pop(next(iter(self._pending)))
            pend = _Pending(item.count, item.total_len, bytearray(item.total_len))
            self._pending[key] = pend
        if pend.count != item.count or pend.total_len != item.total_len:
            del self._pending[key]
            raise ChunkError(f"chunk {item.index} of message {item.msg_id} disagrees on totals")
        span = (item.offset, item.offset + len(item.data))
        if item.index in pend.seen:
            if pend.seen[item.index] != span:
                del self._pending[key]
                raise ChunkError(f"chunk {item.index} of message {item.msg_id} sent twice, differs")
            return None
        pend.buffer[span[0] : span[1]] = item.data
        pend.seen[item.index] = span
        if len(pend.seen) < pend.count:
            return None
        del self._pending[key]
        spans = sorted(pend.seen.values())
        cursor = 0
        for start, end in spans:
            if start != cursor:
                raise ChunkError(f"chunks of message {item.msg_id} leave gaps or overlap")
            cursor = end
        if cursor != pend.total_len:
            raise ChunkError(f"chunks of message {item.msg_id} do not cover its length")
        inner = decode_message(bytes(pend.buffer), self.max_message_bytes)
        if inner.msg_id != item.msg_id or inner.device_id != item.device_id:
            raise ChunkError("reassembled message does not match its chunks' id")
        return inner
