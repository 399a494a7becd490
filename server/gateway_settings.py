"""The MQTT gateway's settings, counters and its record of one open task."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tinyfleet.device import wire
from tinyfleet.device.wire import WireMessage
from tinyfleet.errors import UsageError


@dataclass
class GatewayCounters:
    """What the gateway saw; read them any time (ints, updated under the gateway lock)."""

    tasks: int = 0
    publishes: int = 0
    replies: int = 0
    duplicates: int = 0
    malformed: int = 0
    foreign: int = 0
    invalid: int = 0
    device_errors: int = 0
    timeouts: int = 0
    retries: int = 0
    drops: int = 0
    resends: int = 0
    recovered: int = 0  # tasks resent to a device that came back after going offline
    connects: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class PendingTask:
    """A task sent (or about to be) and not yet finished."""

    device_id: str
    round: int
    msg_id: int
    payloads: list[bytes]
    arrays: tuple[tuple[str, tuple[int, ...]], ...]
    event: threading.Event = field(default_factory=threading.Event)
    reply: WireMessage | None = None
    dropped: bool = False
    resend: bool = False
    expires_at: float | None = None  # monotonic; submitted tasks only


@dataclass(frozen=True)
class GatewaySettings:
    """``round_timeout``: seconds to wait for one reply before re-sending;
    ``retries``: how many re-sends; ``fail_on_drop``: a device that is offline, or goes
    offline with a task, fails the request unless it comes back (its status says online)
    within ``offline_wait`` seconds, in which case the same task is sent again (the
    device's data is seeded by round, so the numbers are those of an uninterrupted run,
    and a reply is applied once: the first for a task wins). ``offline_wait`` 0 fails at
    once; without ``fail_on_drop`` the gateway waits the round timeout. ``task_qos``:
    MQTT QoS of tasks and of the update subscription (1, at least once, by default; 0
    saves the PUBACKs, and a lost task or reply is then recovered by the round timeout's
    re-send: docs/performance.md has the measured difference). ``task_expiry_s``: tasks go
    out as MQTT 5 messages with this expiry, for devices that sleep (their persistent
    session queues a task until they wake; :meth:`MqttGateway.submit`); None: MQTT 3.1.1."""

    fleet: str = "default"
    client_id: str | None = None
    round_timeout: float = 30.0
    retries: int = 1
    fail_on_drop: bool = True
    offline_wait: float = 10.0
    task_qos: int = 1
    max_payload: int = 256 * 1024
    max_message_bytes: int = wire.DEFAULT_MAX_MESSAGE_BYTES
    keepalive: int = 30
    task_expiry_s: float | None = None

    def __post_init__(self) -> None:
        if not self.round_timeout > 0 or int(self.retries) < 0 or self.offline_wait < 0:
            raise UsageError("round timeout must be > 0, retries and offline wait >= 0")
        if self.task_expiry_s is not None and not self.task_expiry_s >= 1:
            raise UsageError(f"task expiry must be >= 1 s, got {self.task_expiry_s}")
        if self.task_qos not in (0, 1):
            raise UsageError(f"task QoS must be 0 or 1, got {self.task_qos}")
