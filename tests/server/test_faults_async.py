"""Poisoned replies in ASYNCHRONOUS rounds (FedBuff-style ``run_buffered``, and sleeping
devices over a real Mosquitto): the same reply check as a synchronous round
(server/replies.py ``ReplyGuard``): a finite but huge reply (every entry 1e30) is refused
by the update-norm bound, never buffered, counted against its device, and after
``quarantine_after`` refusals the device gets no more tasks."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import ArrayRecord, Error, Message, MetricRecord, RecordDict

from tinyfleet.device import wire
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt import BrokerAddress
from tinyfleet.device.mqtt_client import MqttDevice, RoundTaskHandler
from tinyfleet.device.wire import WireMessage
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, RoundPlan
from tinyfleet.server.async_rounds import (
    BufferedResult,
    DutyCycle,
    StalenessBuffer,
    reply_vector,
    run_buffered,
    task_message,
)
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.gateway import GatewaySettings, MqttGateway
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.mqtt_async import run_async_mqtt
from tinyfleet.server.replies import ReplyGuard
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.faults

SEED = 11
SPEC = get_use_case("sine").head_spec
THETA0 = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)
DEVICES, LIAR = 6, 2
DUTY = DutyCycle(30.0, 3.0, DEVICES, SEED)


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def liar_call(answer: str | None) -> tuple[Callable[[Message], Message], Counter[int]]:
    """The simulated ClientApp, except that device ``LIAR`` answers every task with
    ``answer``: "1e30" (finite, huge), "nan", "error" (an error reply: the device failed,
    nothing to hold against it), or None (honestly). Also counts each device's tasks."""
    honest = client_app_call(make_client_app(SPEC, stream_for_device))
    tasks: Counter[int] = Counter()

    def call(message: Message) -> Message:
        device = int(message.content["config"][KEY_DEVICE_INDEX])  # type: ignore[index,arg-type]
        tasks[device] += 1
        reply = honest(message)
        if answer is None or device != LIAR:
            return reply
        if answer == "error":
            return Message(Error(code=1, reason="device failed"), reply_to=message)
        phi = reply.content["arrays"].to_numpy_ndarrays()[0]  # type: ignore[union-attr]
        bad = np.full_like(phi, 1e30 if answer == "1e30" else np.nan)
        metrics = MetricRecord(dict(reply.content["metrics"]))  # type: ignore[arg-type]
        return Message(
            RecordDict({"arrays": ArrayRecord([bad]), "metrics": metrics}), reply_to=message
        )

    return call, tasks


def buffered(answer: str | None, guard: ReplyGuard) -> tuple[BufferedResult, Counter[int]]:
    call, tasks = liar_call(answer)
    result = run_buffered(
        call,
        PLAN,
        DUTY,
        THETA0,
        seed=SEED,
        aggregations=20,
        buffer_size=2,
        concurrency=3,
        beta0=0.5,
        guard=guard,
    )
    return result, tasks


def test_async_huge_finite_reply_is_never_aggregated() -> None:
    """Quarantine off: the run with a liar replying 1e30 equals, bit for bit, the run in
    which the liar's replies are error replies (never aggregated by construction), and
    the bound counted every lie. Without the bound the lie is applied."""
    lied, tasks = buffered("1e30", ReplyGuard(quarantine_after=None))
    failed, failed_tasks = buffered("error", ReplyGuard(quarantine_after=None))
    assert tasks[LIAR] >= 3 and tasks == failed_tasks  # same draws, same tasks
    assert np.all(np.isfinite(lied.theta)) and np.max(np.abs(lied.theta)) < 100
    assert lied.theta.tobytes() == failed.theta.tobytes()
    assert lied.aggregations == failed.aggregations == 20
    counters = lied.counters
    assert counters.bounded_replies == tasks[LIAR] == lied.rejected
    assert counters.rejected_by_device == {LIAR: tasks[LIAR]}
    assert counters.accepted_replies == lied.replies - tasks[LIAR]
    assert failed.counters.rejected_by_device == {} and failed.counters.bounded_replies == 0
    assert lied.quarantined == {}
    # The check is what stops it: with the bound off, the 1e30 reply is buffered.
    unbounded, _ = buffered("1e30", ReplyGuard(max_update_ratio=None, quarantine_after=None))
    assert np.max(np.abs(unbounded.theta)) > 1e20


def test_async_liar_is_quarantined_and_gets_no_more_tasks() -> None:
    """Default guard (bound 2.0, quarantine after 3): the liar gets exactly 3 tasks, is
    quarantined with the 3rd refusal, and the run is bit for bit the run in which it
    replies NaN instead (a refusal async rounds have always made, now counted alike)."""
    lied, tasks = buffered("1e30", ReplyGuard())
    nan, nan_tasks = buffered("nan", ReplyGuard())
    honest, _ = buffered(None, ReplyGuard())
    assert tasks[LIAR] == 3 and tasks == nan_tasks
    assert list(lied.quarantined) == [LIAR] and lied.quarantined == nan.quarantined
    assert lied.counters.rejected_by_device == {LIAR: 3} == nan.counters.rejected_by_device
    assert lied.counters.bounded_replies == 3 and nan.counters.bounded_replies == 0
    assert lied.rejected == 3 and lied.counters.accepted_replies == lied.replies - 3
    assert lied.theta.tobytes() == nan.theta.tobytes()
    assert np.all(np.isfinite(lied.theta)) and np.max(np.abs(lied.theta)) < 100
    assert lied.aggregations == 20
    # Honest fleets are untouched by the guard: nothing refused, nobody quarantined.
    assert honest.rejected == 0 and honest.quarantined == {}
    assert not np.array_equal(honest.theta, lied.theta)


def test_reply_guard_bounds_a_delta_upload_as_the_update() -> None:
    """A TinyMetaFed-style reply is the update itself: bounded by its own norm (a 1e30
    delta is refused; an honest-sized one accepted with its true ratio), not by
    ``||delta - theta||`` (~1 for any small delta). Bad bounds fail in one line."""
    from tinyfleet.errors import UsageError

    theta = THETA0
    small = (0.01 * theta).astype(np.float32)

    def content(vector: np.ndarray) -> RecordDict:
        return RecordDict({"arrays": ArrayRecord([vector]), "metrics": MetricRecord({})})

    guard = ReplyGuard()
    problem, checked = guard.check(content(small), theta, 1, delta=True)
    assert problem is None and checked is not None
    assert guard.counters.max_update_ratio == pytest.approx(0.01, rel=1e-5)
    problem, _ = guard.check(content(np.full_like(theta, 1e30)), theta, 1, delta=True)
    assert problem is not None and "update norm" in problem
    assert guard.counters.bounded_replies == 1
    with pytest.raises(UsageError, match="max_update_ratio must be > 0"):
        ReplyGuard(max_update_ratio=-1.0)
    with pytest.raises(UsageError, match="min_norm must be > 0"):
        ReplyGuard(min_norm=0.0)


def test_duty_cycle_buffered_run_reports_the_strategys_guard() -> None:
    """``simulate --duty-cycle``'s buffered (FedAvg) run checks replies with its
    strategy's guard and reports its counters: an honest fleet has no refusals."""
    from tinyfleet.simulations.duty import run_duty_cycle
    from tinyfleet.simulations.runner import settings_for

    settings = settings_for(
        get_use_case("sine"), devices=10, rounds=20, seed=1, strategies=("fedavg",),
        eval_devices=3, eval_points=2,
    )  # fmt: skip
    row = run_duty_cycle(settings, 30.0, 3.0)["strategies"]["fedavg"]["async"]
    assert row["mode"] == "buffered" and row["aggregations"] >= 1
    assert row["rejected_replies"] == 0 and row["bounded_replies"] == 0
    assert row["quarantined_devices"] == []


# -- over MQTT: sleeping devices, one of them lying ------------------------------------


def sleepy(broker: ManagedBroker, fleet: str, index: int, lie: bool) -> MqttDevice:
    address = BrokerAddress(broker.host, broker.port)
    settings = address.device_settings(
        f"async-liar-{index}", fleet=fleet, session_expiry_s=120, tasks_per_wake=1
    )
    handler = RoundTaskHandler(SPEC, stream_for_device, device_index=index)
    if not lie:
        return MqttDevice(settings, handler)

    def lying(task: WireMessage):
        fields, arrays = handler(task)
        bad = np.full_like(arrays[0].to_float32(), 1e30)  # finite: passes the gateway
        return fields, [wire.float32_array(arrays[0].name, bad)]

    return MqttDevice(settings, lying)


@pytest.mark.mqtt
def test_mqtt_async_liar_refused_counted_and_quarantined(broker: ManagedBroker) -> None:
    """Two sleeping devices, two tasks out: device 1 replies 1e30. Its replies are
    refused by the bound (never applied), counted against it, and after 2 refusals
    (``quarantine_after=2``) it gets no more tasks; the honest device's 4 replies are
    applied, and theta equals the in-process replay of the applied tasks, bit for bit."""
    from tinyfleet.device.duty import DutyCycledDevice

    fleet = "async-liar"
    devices = [sleepy(broker, fleet, i, lie=i == 1) for i in range(2)]
    gateway = MqttGateway(
        BrokerAddress(broker.host, broker.port), GatewaySettings(fleet=fleet, task_expiry_s=30)
    ).start()
    cyclers = [DutyCycledDevice(d, 1.2, 0.4, phase=0.6 * i) for i, d in enumerate(devices)]
    try:
        for c in cyclers:
            c.start()
        run = run_async_mqtt(
            gateway, [d.settings.device_id for d in devices], PLAN, THETA0, seed=SEED,
            aggregations=4, buffer_size=1, concurrency=2, beta0=0.5, deadline_s=60,
            guard=ReplyGuard(quarantine_after=2),
        )  # fmt: skip
        time.sleep(1.5)  # a wake more: a task sent after the quarantine would show here
    finally:
        for c in cyclers:
            c.stop()
        gateway.stop()
    liar = [r for r in run.tasks if r.device == 1]
    assert run.aggregations == 4 and run.expired == 0 and run.failed == 0
    assert [r.outcome for r in liar] == ["refused", "refused"]
    assert run.refused == 2 and run.quarantined == {1: liar[-1].task}
    assert devices[1].counters.tasks == 2  # no task after the quarantine
    assert run.counters.bounded_replies == 2 and run.counters.rejected_by_device == {1: 2}
    applied = sorted(
        (r for r in run.tasks if r.outcome == "applied"), key=lambda r: r.applied_version or 0
    )
    assert [r.device for r in applied] == [0, 0, 0, 0]
    assert run.counters.accepted_replies == 4
    assert np.all(np.isfinite(run.theta)) and np.max(np.abs(run.theta)) < 100
    call = client_app_call(make_client_app(SPEC, stream_for_device))
    thetas = [THETA0]
    buffer = StalenessBuffer(1, 0.5, True, 4)
    for r in applied:
        sent = thetas[r.sent_version]
        phi = reply_vector(call(task_message(PLAN, sent, r.task, r.device, SEED)), sent.shape)
        assert phi is not None
        buffer.add(phi, sent, r.sent_version)
        thetas.append(buffer.step(thetas[-1]))
    assert thetas[-1].tobytes() == run.theta.tobytes()
