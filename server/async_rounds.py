"""Devices that sleep: a duty-cycle clock, rounds that wait for sleepers, and rounds that don't.

A duty-cycled device wakes every ``period`` seconds for ``window`` seconds (its phase is
seeded per device) and sleeps otherwise; a task sent while it sleeps waits for it (on
MQTT: a persistent session with a queued QoS 1 task) and its reply comes ``compute_s``
after it wakes. Time here is *simulated*: nothing sleeps, so a day of fleet time runs in
seconds.

* :class:`DutyCycleGrid` is the in-process Grid on that clock: a synchronous round (any
  of Flower's ``Strategy.start()`` loops) ends when its last device has woken and replied.
* :class:`NextToWakeSampler` is TinyReptile's scheduler for sleepy fleets: each round goes
  to the device that wakes next, so no round waits long.
* :func:`run_buffered` is the asynchronous mode for multi-device strategies (FedBuff,
  Nguyen et al. 2022): ``concurrency`` tasks are always out; the server aggregates as soon
  as ``buffer_size`` replies are in and sends new tasks at once. A reply computed on model
  version ``v`` that arrives at version ``V`` has staleness ``tau = V - v`` and enters with
  weight ``w_i = (1 + tau) ** -0.5``::

      theta <- theta + beta_v * sum_i w_i * (phi_i - theta_(v_i)) / sum_i w_i

  (``beta_v`` annealed over the run's aggregations like Reptile's; FedAvg is ``beta = 1``).

Every reply passes the synchronous rounds' check (:class:`~tinyfleet.server.replies.
ReplyGuard`: shape, NaN/Inf, the update-norm bound against the theta its task carried); a
refused one is never buffered, counts against its device, and a device refused
``quarantine_after`` times gets no more tasks (:func:`task_reply`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Message, MessageType

from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND, KEY_SEED, RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.counters import StrategyCounters
from tinyfleet.server.grid import ClientCall, InProcessGrid, ensure_task_identity
from tinyfleet.server.records import ARRAYS_KEY, CONFIG_KEY, METRICS_KEY, encode_train_content
from tinyfleet.server.replies import ReplyGuard, parse_train_reply
from tinyfleet.server.strategies import annealed_beta

DUTY_TAG = 0x44555459  # "DUTY"
ASYNC_TAG = 0x4153594E  # "ASYN"


@dataclass(frozen=True)
class DutyCycle:
    """Device ``i`` is awake in ``[phase_i + n*period, phase_i + n*period + window)``."""

    period: float
    window: float
    num_devices: int
    seed: int = 0
    compute_s: float = 1.0

    def __post_init__(self) -> None:
        if not (self.period > 0 and 0 < self.window <= self.period):
            raise UsageError(
                f"duty cycle needs 0 < window <= period, got {self.window}/{self.period}"
            )
        if not 0 <= self.compute_s <= self.window:
            raise UsageError(f"compute time {self.compute_s} s does not fit the wake window")

    @property
    def asleep_fraction(self) -> float:
        return 1.0 - self.window / self.period

    @property
    def phases(self) -> np.ndarray:
        rng = np.random.default_rng([DUTY_TAG, int(self.seed)])
        return rng.uniform(0.0, self.period, size=int(self.num_devices))

    def next_wake(self, device: int, now: float, phases: np.ndarray | None = None) -> float:
        """When ``device`` can next start a task (``now`` if it is awake with time left)."""
        phase = float((self.phases if phases is None else phases)[int(device)])
        cycles = np.floor((now - phase) / self.period)
        start = phase + cycles * self.period
        if now <= start + self.window - self.compute_s:
            return max(now, start)
        return start + self.period

    def window_end(self, device: int, wake: float, phases: np.ndarray | None = None) -> float:
        """End of the wake window that ``wake`` falls in: a device does one task per
        window and then sleeps, so it is next available after this."""
        phase = float((self.phases if phases is None else phases)[int(device)])
        start = phase + np.floor((wake - phase) / self.period) * self.period
        return float(start + self.window)

    def done_at(self, device: int, now: float, phases: np.ndarray | None = None) -> float:
        """When a task sent at ``now`` comes back from ``device``."""
        return self.next_wake(device, now, phases) + self.compute_s


@dataclass
class SimClock:
    """Simulated seconds since the run started."""

    now: float = 0.0


def _device_of(message: Message) -> int:
    config = message.content.config_records[CONFIG_KEY]
    return int(config[KEY_DEVICE_INDEX])  # type: ignore[arg-type]


class DutyCycleGrid(InProcessGrid):
    """An :class:`InProcessGrid` whose round ends when its last (sleeping) device replies."""

    def __init__(
        self, client_call: ClientCall, num_nodes: int, duty: DutyCycle, clock: SimClock
    ) -> None:
        super().__init__(client_call, num_nodes)
        self.duty = duty
        self.clock = clock
        self._phases = duty.phases

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        batch = list(messages)
        ends = [
            self.duty.done_at(_device_of(m), self.clock.now, self._phases)
            for m in batch
            if CONFIG_KEY in m.content.config_records
        ]
        ids = super().push_messages(batch)
        if ends:
            self.clock.now = max(ends)
        return ids


class NextToWakeSampler:
    """TinyReptile's sampler for sleepy fleets: the ``count`` devices that wake next."""

    def __init__(self, duty: DutyCycle, clock: SimClock) -> None:
        self.duty = duty
        self.clock = clock
        self._phases = duty.phases
        self._free_at = np.zeros(duty.num_devices)  # one task per wake window

    def select(self, server_round: int, count: int) -> list[int]:
        now = self.clock.now
        wakes = sorted(
            (self.duty.next_wake(d, max(now, self._free_at[d]), self._phases), d)
            for d in range(self.duty.num_devices)
        )[: int(count)]
        for wake, d in wakes:
            self._free_at[d] = self.duty.window_end(d, wake, self._phases)
        return [d for _, d in wakes]


@dataclass
class BufferedResult:
    """What :func:`run_buffered` did: final theta, simulated time, and its curve."""

    theta: np.ndarray
    sim_time_s: float
    aggregations: int
    replies: int
    rejected: int
    mean_staleness: float
    curve: list[dict[str, float]] = field(default_factory=list)
    #: The reply guard's counters (accepted, rejected, bounded, per device) and the
    #: devices it quarantined (device -> task number).
    counters: StrategyCounters = field(default_factory=StrategyCounters)
    quarantined: dict[int, int] = field(default_factory=dict)


class StalenessBuffer:
    """FedBuff's server side: collect staleness-weighted updates, step every
    ``buffer_size`` of them (the rule in the module docstring)."""

    def __init__(self, buffer_size: int, beta0: float, anneal: bool, aggregations: int) -> None:
        self.buffer_size = int(buffer_size)
        self.beta0, self.anneal, self.aggregations = beta0, anneal, int(aggregations)
        self.version = 0
        self.staleness: list[int] = []
        self._items: list[tuple[np.ndarray, float]] = []

    def add(self, phi: np.ndarray, task_theta: np.ndarray, task_version: int) -> None:
        """One reply ``phi`` to a task sent with ``task_theta`` at ``task_version``."""
        tau = self.version - task_version
        weight = (1.0 + tau) ** -0.5
        self.staleness.append(tau)
        self._items.append(((phi - task_theta) * np.float32(weight), weight))

    @property
    def full(self) -> bool:
        return len(self._items) >= self.buffer_size

    def step(self, theta: np.ndarray) -> np.ndarray:
        """The next model version from the buffered updates (the buffer empties)."""
        beta = (
            annealed_beta(self.beta0, self.version + 1, self.aggregations)
            if self.anneal
            else self.beta0
        )
        total = np.float32(sum(w for _, w in self._items))
        step = np.sum(np.stack([d for d, _ in self._items]), axis=0) / total
        self._items.clear()
        self.version += 1
        return (theta + np.float32(beta) * step).astype(np.float32)

    @property
    def mean_staleness(self) -> float:
        return float(np.mean(self.staleness)) if self.staleness else 0.0


@dataclass(order=True)
class _Task:
    done_at: float
    device: int
    version: int = field(compare=False)
    number: int = field(compare=False)
    theta: np.ndarray = field(compare=False, repr=False)
    reply: Message = field(compare=False, repr=False)


def run_buffered(
    call: ClientCall | None,
    plan: RoundPlan,
    duty: DutyCycle,
    theta0: np.ndarray,
    *,
    seed: int,
    aggregations: int,
    buffer_size: int,
    concurrency: int,
    beta0: float = 1.0,
    anneal: bool = True,
    evaluate: Callable[[np.ndarray], float] | None = None,
    eval_every: int = 1,
    until_s: float | None = None,
    guard: ReplyGuard | None = None,
) -> BufferedResult:
    """FedBuff-style asynchronous training on a duty-cycled fleet (see module docstring).

    ``call(message) -> reply`` runs a device's round (e.g. the simulated ClientApp); each
    task carries a fresh task number as its ``round`` so every device round draws fresh
    data. Devices are drawn uniformly (seeded) from those without a task in flight.
    ``evaluate(theta)`` is recorded every ``eval_every`` aggregations with the time.
    ``until_s`` stops at that simulated time (before ``aggregations`` if it comes first).
    ``call=None`` runs the timing only (no device work): how many aggregations fit.
    A device does one task per wake window. ``guard`` checks every reply and keeps the
    quarantine (default: the strategies' defaults); a quarantined device is not drawn.
    """
    if not 1 <= buffer_size <= concurrency <= duty.num_devices:
        raise UsageError(
            f"need 1 <= buffer ({buffer_size}) <= concurrency ({concurrency}) <= devices "
            f"({duty.num_devices})"
        )
    rng = np.random.default_rng([ASYNC_TAG, int(seed)])
    phases = duty.phases
    theta = np.asarray(theta0, dtype=np.float32).copy()
    task_number, now = 0, 0.0
    busy: set[int] = set()
    free_at = np.zeros(duty.num_devices)
    pending: list[_Task] = []
    buffer = StalenessBuffer(buffer_size, beta0, anneal, aggregations)
    guard = guard or ReplyGuard()
    replies = 0
    curve: list[dict[str, float]] = []
    if evaluate is not None:
        curve.append({"time_s": 0.0, "aggregation": 0, "fewshot": float(evaluate(theta))})

    def dispatch() -> None:
        nonlocal task_number
        idle = [d for d in range(duty.num_devices) if d not in busy and not guard.quarantined(d)]
        if not idle:
            return  # every free device is quarantined: fewer tasks in flight
        device = int(idle[int(rng.integers(len(idle)))])
        task_number += 1
        message = task_message(plan, theta, task_number, device, seed)
        reply = call(message) if call is not None else message
        busy.add(device)
        wake = duty.next_wake(device, max(now, free_at[device]), phases)
        free_at[device] = duty.window_end(device, wake, phases)
        done_at = wake + duty.compute_s
        heapq.heappush(pending, _Task(done_at, device, buffer.version, task_number, theta, reply))

    for _ in range(concurrency):
        dispatch()
    while buffer.version < aggregations and pending:
        task = heapq.heappop(pending)
        if until_s is not None and task.done_at > until_s:
            break
        now = task.done_at
        busy.discard(task.device)
        replies += 1
        phi = (
            task_reply(task.reply, task.theta, task.number, task.device, guard, plan)
            if call is not None
            else theta
        )
        if phi is not None:
            buffer.add(phi, task.theta, task.version)
        if buffer.full:
            theta = buffer.step(theta)
            version = buffer.version
            if evaluate is not None and (version % eval_every == 0 or version == aggregations):
                curve.append(
                    {"time_s": now, "aggregation": version, "fewshot": float(evaluate(theta))}
                )
        dispatch()
    rejected = guard.counters.rejected_replies
    return BufferedResult(
        theta, now, buffer.version, replies, rejected, buffer.mean_staleness, curve,
        guard.counters, dict(guard.quarantine.quarantined),
    )  # fmt: skip


def task_message(
    plan: RoundPlan, theta: np.ndarray, task_number: int, device: int, seed: int
) -> Message:
    """An async task: the plan, a fresh task number as its ``round`` (fresh data on every
    device round) and the device's index, as a Flower train Message."""
    ensure_task_identity()
    config = {
        **plan.to_config(),
        KEY_ROUND: task_number,
        KEY_DEVICE_INDEX: device,
        KEY_SEED: int(seed),
    }
    return Message(
        encode_train_content(theta, config),
        dst_node_id=1000 + device,
        message_type=MessageType.TRAIN,
        group_id=str(task_number),
    )


def task_reply(
    reply: Message,
    task_theta: np.ndarray,
    task_number: int,
    device: int,
    guard: ReplyGuard,
    plan: RoundPlan | None = None,
) -> np.ndarray | None:
    """The ``phi`` of an asynchronous task's reply if ``guard`` accepts it, else None.

    ``task_theta`` is the model the task carried (the bound is measured against it, not
    against the model now), ``task_number`` the ``round`` it carried. Counted in
    ``guard.counters`` as in a synchronous round: an error reply (the device or the
    transport failed) is a rejected reply; refused content is also held against
    ``device`` (and may quarantine it, in task ``task_number``).
    """
    counters = guard.counters
    if reply.has_error():
        counters.rejected_replies += 1
        return None
    delta = plan is not None and plan.upload == "delta"
    problem, checked = guard.check(reply.content, task_theta, task_number, delta=delta)
    if checked is None:
        counters.rejected_replies += 1
        guard.refuse(device, task_number, problem or "refused")
        return None
    counters.accepted_replies += 1
    return checked[0]


def reply_vector(reply: Message, shape: tuple[int, ...]) -> np.ndarray | None:
    """A reply's parameters if their content is well-formed (no bound, nothing counted):
    for replaying a run's tasks (:func:`task_reply` is what a run applies)."""
    if reply.has_error():
        return None
    theta = np.zeros(shape, dtype=np.float32)
    _, checked = parse_train_reply(reply.content, theta, None, ARRAYS_KEY, METRICS_KEY)
    return None if checked is None else checked[0]


def time_to_reach(
    curve: Iterable[dict[str, float]], target: float, lower_is_better: bool
) -> float | None:
    """Simulated seconds until the curve first reaches ``target`` (None: never)."""
    for point in curve:
        value = point["fewshot"]
        if (value <= target) if lower_is_better else (value >= target):
            return float(point["time_s"])
    return None
