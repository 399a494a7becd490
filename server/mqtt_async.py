"""Asynchronous rounds over real MQTT, for devices that sleep: the server never blocks on
a sleeper.

The MQTT counterpart of :func:`tinyfleet.server.async_rounds.run_buffered` (which runs on
a simulated clock): ``concurrency`` tasks are always out through an
:class:`~tinyfleet.server.gateway.MqttGateway` (:meth:`~MqttGateway.submit`, QoS 1 with
message expiry); each waits at the broker in its device's persistent session until the
device wakes (:mod:`tinyfleet.device.duty`). The server aggregates as soon as
``buffer_size`` replies are in (:class:`~tinyfleet.server.async_rounds.StalenessBuffer`,
FedBuff's staleness-weighted rule) and sends new tasks at once. With ``buffer_size`` 1 and
``concurrency`` 1 this is TinyReptile with next-to-wake scheduling.

Which device gets a task: the idle one that wakes next, from the retained status each
device publishes (``online``: awake now; ``asleep`` with ``next_wake``); ties by index. A
device that has just replied and published nothing since goes last (it is about to
sleep: its ``online`` is stale).
A task that expires unanswered is counted and forgotten (its reply, should it come, is
dropped by the gateway); a failed reply is counted; neither touches theta. Every reply
passes the same check as a synchronous round's (:class:`~tinyfleet.server.replies.
ReplyGuard`: shape, NaN/Inf, the update-norm bound against the theta its task carried):
a refused one (by that check or by the gateway's own) is not buffered, counts against
its device, and a device refused ``quarantine_after`` times gets no more tasks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tinyfleet.device.wire import WireMessage
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.async_rounds import StalenessBuffer, task_message, task_reply
from tinyfleet.server.counters import StrategyCounters
from tinyfleet.server.gateway import GatewayError, GatewayTimeout, MqttGateway
from tinyfleet.server.gateway_errors import InvalidReplyError
from tinyfleet.server.gateway_flower import message_to_task, reply_to_message
from tinyfleet.server.replies import ReplyGuard


@dataclass
class TaskRecord:
    """One task: its number (the ``round`` its device trained with), device index, the
    model version it was sent with, and the version it produced (None: not applied)."""

    task: int
    device: int
    sent_version: int
    applied_version: int | None = None
    outcome: str = "open"  # applied | expired | failed | refused | open


@dataclass
class MqttAsyncResult:
    theta: np.ndarray
    aggregations: int
    replies: int
    expired: int
    failed: int
    mean_staleness: float
    wall_s: float
    tasks: list[TaskRecord] = field(default_factory=list)
    refused: int = 0  # replies the reply check refused (counted against their device)
    #: The reply guard's counters and the devices it quarantined (index -> task number).
    counters: StrategyCounters = field(default_factory=StrategyCounters)
    quarantined: dict[int, int] = field(default_factory=dict)


def wake_order(
    gateway: MqttGateway,
    device_ids: Sequence[str],
    idle: Sequence[int],
    replied: Mapping[int, object] | None = None,
) -> list[int]:
    """``idle`` device indices, the one that wakes next first (awake ones are "now").

    ``replied[i]`` is the status document device ``i`` had when its last reply came in:
    while that is still its latest status, the device is about to go back to sleep (one
    task per wake), so "online" there is stale and it goes last, not first.
    """
    now = time.time()
    by_id = gateway.statuses(device_ids[i] for i in idle)
    docs = {i: by_id[device_ids[i]] for i in idle}
    seen = replied or {}

    def wakes_at(index: int) -> float:
        doc = docs[index] or {}
        if index in seen and seen[index] is docs[index]:
            return float("inf")  # no news since its reply
        if doc.get("state") == "online":
            return now
        if doc.get("state") == "asleep" and isinstance(doc.get("next_wake"), int | float):
            return max(now, float(doc["next_wake"]))
        return float("inf")  # offline or never seen

    return sorted(idle, key=lambda i: (wakes_at(i), i))


def run_async_mqtt(
    gateway: MqttGateway,
    device_ids: Sequence[str],
    plan: RoundPlan,
    theta0: np.ndarray,
    *,
    seed: int,
    aggregations: int,
    buffer_size: int = 1,
    concurrency: int = 1,
    beta0: float = 1.0,
    anneal: bool = True,
    deadline_s: float = 600.0,
    device_indices: Sequence[int] | None = None,
    guard: ReplyGuard | None = None,
) -> MqttAsyncResult:
    """Run ``aggregations`` buffered aggregations over the gateway's devices (or stop
    after ``deadline_s`` wall seconds, or when no device may get a task). ``device_indices
    [i]`` is the data index of ``device_ids[i]`` (default: its position), what its task's
    ``device-index`` says and what ``guard`` (default: the strategies' defaults) counts
    refusals and quarantines by."""
    if not 1 <= buffer_size <= concurrency <= len(device_ids):
        raise UsageError(
            f"need 1 <= buffer ({buffer_size}) <= concurrency ({concurrency}) <= devices "
            f"({len(device_ids)})"
        )
    indices = list(range(len(device_ids))) if device_indices is None else list(device_indices)
    theta = np.asarray(theta0, dtype=np.float32).copy()
    buffer = StalenessBuffer(buffer_size, beta0, anneal, aggregations)
    started = time.monotonic()
    out: dict[int, tuple[int, np.ndarray, TaskRecord]] = {}  # msg_id -> (slot, theta, record)
    records: list[TaskRecord] = []
    guard = guard or ReplyGuard()
    replies = expired = failed = refused = 0
    replied: dict[int, object] = {}  # slot -> its status document when it last replied

    def dispatch() -> None:
        busy = {slot for slot, _, _ in out.values()}
        idle = [
            s for s in range(len(device_ids)) if s not in busy and not guard.quarantined(indices[s])
        ]
        for slot in wake_order(gateway, device_ids, idle, replied)[: concurrency - len(out)]:
            record = TaskRecord(len(records) + 1, indices[slot], buffer.version)
            message = task_message(plan, theta, record.task, indices[slot], seed)
            kind, round_, fields, arrays = message_to_task(message)
            msg_id = gateway.submit(
                device_ids[slot], round=round_, fields=fields, arrays=arrays, msg_type=kind
            )
            records.append(record)
            out[msg_id] = (slot, theta, record)

    dispatch()
    while buffer.version < aggregations and out:
        left = deadline_s - (time.monotonic() - started)
        if left <= 0:
            break
        for msg_id, result in gateway.poll(list(out), timeout=left).items():
            slot, task_theta, record = out.pop(msg_id)
            replied[slot] = gateway.statuses([device_ids[slot]])[device_ids[slot]]
            phi = _phi(result, plan, task_theta, record, seed, guard)
            if isinstance(result, WireMessage):
                replies += 1
            if phi is None:
                if isinstance(result, WireMessage | InvalidReplyError):
                    record.outcome = "refused"
                else:
                    record.outcome = "expired" if isinstance(result, GatewayTimeout) else "failed"
                expired += record.outcome == "expired"
                failed += record.outcome == "failed"
                refused += record.outcome == "refused"
                continue
            buffer.add(phi, task_theta, record.sent_version)
            record.outcome = "applied"
            record.applied_version = buffer.version + 1
            if buffer.full:
                theta = buffer.step(theta)
            if buffer.version >= aggregations:
                break
        if buffer.version < aggregations:
            dispatch()
    return MqttAsyncResult(
        theta,
        buffer.version,
        replies,
        expired,
        failed,
        buffer.mean_staleness,
        time.monotonic() - started,
        records,
        refused,
        guard.counters,
        dict(guard.quarantine.quarantined),
    )


def _phi(
    result: WireMessage | GatewayError,
    plan: RoundPlan,
    task_theta: np.ndarray,
    record: TaskRecord,
    seed: int,
    guard: ReplyGuard,
) -> np.ndarray | None:
    """The reply's parameter vector if ``guard`` accepts it, checked and counted exactly
    as the in-process path does (:func:`~tinyfleet.server.async_rounds.task_reply`)."""
    if isinstance(result, InvalidReplyError):
        # The gateway refused the content (shape, NaN/Inf) before it became a Message:
        # the same refusal, held against the device the same way.
        guard.counters.rejected_replies += 1
        guard.refuse(record.device, record.task, str(result))
        return None
    if not isinstance(result, WireMessage):
        guard.counters.rejected_replies += 1  # expired or failed: not the device's content
        return None
    request = task_message(plan, task_theta, record.task, record.device, seed)
    message = reply_to_message(result, request)
    return task_reply(message, task_theta, record.task, record.device, guard, plan)
