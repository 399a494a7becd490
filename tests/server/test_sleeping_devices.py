"""Devices that sleep, over a real Mosquitto (marker ``mqtt``).

A sleeping device holds no connection: its persistent MQTT 5 session keeps its task
subscription, and the gateway's QoS 1 tasks (with message expiry) wait at the broker
until it wakes. The server never blocks on it (server/mqtt_async.py). Outcomes are
checked against the in-process computation of the same tasks, bit for bit.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tinyfleet.device.duty import DutyCycledDevice
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt import BrokerAddress
from tinyfleet.device.mqtt_client import MqttDevice, RoundTaskHandler
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.server.async_rounds import DutyCycle, StalenessBuffer, run_buffered, task_message
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.gateway import GatewaySettings, GatewayTimeout, MqttGateway
from tinyfleet.server.gateway_flower import message_to_task
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.mqtt_async import run_async_mqtt
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.mqtt

SEED = 5
SPEC = get_use_case("sine").head_spec
THETA0 = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def sleepy_device(
    broker: ManagedBroker, fleet: str, name: str, index: int, tasks_per_wake: int | None = None
) -> MqttDevice:
    address = BrokerAddress(broker.host, broker.port)
    settings = address.device_settings(
        name, fleet=fleet, session_expiry_s=120, tasks_per_wake=tasks_per_wake
    )
    return MqttDevice(settings, RoundTaskHandler(SPEC, stream_for_device, device_index=index))


def wait_for_state(gateway: MqttGateway, name: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while gateway.status.get(name, {}).get("state") != state:
        assert time.monotonic() < deadline, f"{name} never said {state!r}"
        time.sleep(0.02)


def test_task_sent_while_asleep_arrives_on_wake_and_is_applied_once(broker: ManagedBroker):
    fleet = "sleepy-once"
    device = sleepy_device(broker, fleet, "sleeper-0", 0).start()
    gateway = MqttGateway(
        BrokerAddress(broker.host, broker.port),
        GatewaySettings(fleet=fleet, task_expiry_s=60),
    ).start()
    try:
        device.sleep(next_wake=time.time() + 1.0)
        wait_for_state(gateway, "sleeper-0", "asleep")
        result = {}
        server = threading.Thread(
            target=lambda: result.update(
                run=run_async_mqtt(gateway, ["sleeper-0"], PLAN, THETA0, seed=SEED, aggregations=1)
            )
        )
        server.start()  # the task goes out while the device sleeps
        time.sleep(1.0)
        assert device.counters.tasks == 0 and server.is_alive()
        assert gateway.counters.tasks == 1
        device.wake()
        server.join(30)
        assert not server.is_alive()
        # Asleep again and awake again: the broker does not deliver the task twice.
        device.sleep()
        device.wake()
        time.sleep(0.5)
        counters = gateway.counters
    finally:
        device.stop()
        gateway.stop()
    run = result["run"]
    reference = run_buffered(
        client_app_call(make_client_app(SPEC, stream_for_device)),
        PLAN,
        DutyCycle(10.0, 1.0, 1, SEED),
        THETA0,
        seed=SEED,
        aggregations=1,
        buffer_size=1,
        concurrency=1,
    )
    assert run.aggregations == 1 and run.replies == 1 and run.expired == 0
    assert run.theta.tobytes() == reference.theta.tobytes()
    assert not np.array_equal(run.theta, THETA0)
    assert device.counters.tasks == 1 and device.counters.repeated_tasks == 0
    assert counters.replies == 1 and counters.duplicates == 0


def test_expired_task_is_not_applied(broker: ManagedBroker):
    fleet = "sleepy-expired"
    device = sleepy_device(broker, fleet, "sleeper-1", 1).start()
    gateway = MqttGateway(
        BrokerAddress(broker.host, broker.port),
        GatewaySettings(fleet=fleet, task_expiry_s=1),
    ).start()
    try:
        device.sleep(next_wake=time.time() + 60)
        wait_for_state(gateway, "sleeper-1", "asleep")
        # The server's loop: the task expires, theta is untouched, the server goes on.
        run = run_async_mqtt(
            gateway, ["sleeper-1"], PLAN, THETA0, seed=SEED, aggregations=1, deadline_s=2.5
        )
        assert run.aggregations == 0 and run.replies == 0 and run.expired >= 1
        assert run.theta.tobytes() == THETA0.tobytes()
        # One more, by hand: expired at the gateway, and the broker drops it too.
        _, round_, fields, arrays = message_to_task(task_message(PLAN, THETA0, 99, 1, SEED))
        msg_id = gateway.submit("sleeper-1", round=round_, fields=fields, arrays=arrays)
        outcome = gateway.poll([msg_id], timeout=5)[msg_id]
        assert isinstance(outcome, GatewayTimeout) and "expired" in str(outcome)
        time.sleep(1.2)  # the last task of the run has expired at the broker as well
        device.wake()
        time.sleep(1.0)
        assert device.counters.tasks == 0  # the broker delivered none of them
        assert gateway.counters.replies == 0
    finally:
        device.stop()
        gateway.stop()


def test_duty_cycled_fleet_over_mqtt_equals_its_replay(broker: ManagedBroker):
    """Three devices awake 0.4 s every 1.2 s (67% asleep; one task per wake), two tasks
    out, aggregate each reply: every sleeper takes part, stale replies count with their
    weight, and the final theta equals an in-process replay of the same tasks in the same
    order (every reply applied once)."""
    fleet = "sleepy-fleet"
    names = [f"duty-{i}" for i in range(3)]
    devices = [sleepy_device(broker, fleet, n, i, tasks_per_wake=1) for i, n in enumerate(names)]
    gateway = MqttGateway(
        BrokerAddress(broker.host, broker.port),
        GatewaySettings(fleet=fleet, task_expiry_s=30),
    ).start()
    cyclers = [DutyCycledDevice(d, 1.2, 0.4, phase=0.4 * i) for i, d in enumerate(devices)]
    try:
        for c in cyclers:
            c.start()
        run = run_async_mqtt(
            gateway,
            names,
            PLAN,
            THETA0,
            seed=SEED,
            aggregations=6,
            buffer_size=1,
            concurrency=2,
            beta0=0.5,
            deadline_s=60,
        )
    finally:
        for c in cyclers:
            c.stop()
        gateway.stop()
    assert run.aggregations == 6 and run.expired == 0 and run.failed == 0
    applied = sorted(
        (r for r in run.tasks if r.outcome == "applied"), key=lambda r: r.applied_version or 0
    )
    assert [r.applied_version for r in applied] == [1, 2, 3, 4, 5, 6]
    assert {r.device for r in applied} == {0, 1, 2}  # every sleeper took part
    # One task per wake: no device answered two tasks in one window.
    assert all(d.counters.tasks <= c.wakes for d, c in zip(devices, cyclers, strict=True))
    # Replay in process: the same tasks, model versions and order give the same theta.
    call = client_app_call(make_client_app(SPEC, stream_for_device))
    from tinyfleet.server.async_rounds import reply_vector

    thetas = [THETA0]
    buffer = StalenessBuffer(1, 0.5, True, 6)
    for r in applied:
        sent = thetas[r.sent_version]
        reply = call(task_message(PLAN, sent, r.task, r.device, SEED))
        phi = reply_vector(reply, sent.shape)
        assert phi is not None
        buffer.add(phi, sent, r.sent_version)
        thetas.append(buffer.step(thetas[-1]))
    assert thetas[-1].tobytes() == run.theta.tobytes()
    assert run.mean_staleness == pytest.approx(buffer.mean_staleness)


def test_bad_sleep_settings_fail_in_one_line(broker: ManagedBroker):
    from tinyfleet.errors import UsageError

    address = BrokerAddress(broker.host, broker.port)
    with pytest.raises(UsageError, match="needs a persistent session"):
        address.device_settings("x-0", tasks_per_wake=1)
    with pytest.raises(UsageError, match="session expiry must be >= 1 s"):
        address.device_settings("x-0", session_expiry_s=0)
    with pytest.raises(UsageError, match="task expiry must be >= 1 s"):
        GatewaySettings(task_expiry_s=0.5)
    awake = MqttDevice(address.device_settings("x-0"), RoundTaskHandler(SPEC, stream_for_device))
    with pytest.raises(UsageError, match="needs a persistent session"):
        awake.sleep()
    with pytest.raises(UsageError, match="window <= period"):
        DutyCycledDevice(awake, period=1.0, window=2.0)


def test_device_run_duty_cycle_cli(broker: ManagedBroker, tmp_path):
    """``tinyfleet device run --duty-cycle 2:0.5``: a real sleeping device process; its
    task is answered on a wake and applied once, equal to the in-process replay."""
    import os
    import signal
    import subprocess
    import sys

    from tinyfleet.simulations.device_cli import use_case_streams

    fleet, name = "sleepy-cli", "cli-sleeper"
    argv = [sys.executable, "-m", "tinyfleet.cli", "device", "run", "--broker",
            f"mqtt://{broker.host}:{broker.port}", "--device-id", name, "--device-index", "3",
            "--fleet", fleet, "--duty-cycle", "2:0.5"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TINYFLEET_MQTT_PASSWORD"}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    gateway = MqttGateway(
        BrokerAddress(broker.host, broker.port), GatewaySettings(fleet=fleet, task_expiry_s=30)
    ).start()
    try:
        wait_for_state(gateway, name, "asleep", timeout=60)
        run = run_async_mqtt(
            gateway, [name], PLAN, THETA0, seed=SEED, aggregations=2, device_indices=[3],
            deadline_s=30,
        )  # fmt: skip
    finally:
        gateway.stop()
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "stopped; 2 round(s) answered" in output
    assert run.aggregations == 2 and [r.device for r in run.tasks] == [3, 3]
    call = client_app_call(make_client_app(SPEC, use_case_streams("sine")))
    from tinyfleet.server.async_rounds import reply_vector

    theta, buffer = THETA0, StalenessBuffer(1, 1.0, True, 2)
    for r in run.tasks:
        phi = reply_vector(call(task_message(PLAN, theta, r.task, 3, SEED)), theta.shape)
        assert phi is not None
        buffer.add(phi, theta, r.sent_version)
        theta = buffer.step(theta)
    assert theta.tobytes() == run.theta.tobytes()


def test_synchronous_relay_waits_for_a_sleeper_without_resending(broker: ManagedBroker):
    """The sync mode over MQTT (what a gateway SuperNode's relay does): the request blocks
    until the sleeping device wakes; the queued task is delivered once, not re-sent."""
    from tinyfleet.device.wire import MessageType

    fleet = "sleepy-sync"
    device = sleepy_device(broker, fleet, "sync-0", 0).start()
    gateway = MqttGateway(
        BrokerAddress(broker.host, broker.port),
        GatewaySettings(fleet=fleet, task_expiry_s=60, round_timeout=30, retries=0),
    ).start()
    _, round_, fields, arrays = message_to_task(task_message(PLAN, THETA0, 1, 0, SEED))
    got = {}
    try:
        device.sleep(next_wake=time.time() + 1.0)
        wait_for_state(gateway, "sync-0", "asleep")
        relay = threading.Thread(
            target=lambda: got.update(
                reply=gateway.request("sync-0", round=round_, fields=fields, arrays=arrays)
            )
        )
        relay.start()
        time.sleep(1.0)
        assert relay.is_alive() and device.counters.tasks == 0
        device.wake()
        relay.join(30)
        counters = gateway.counters
    finally:
        device.stop()
        gateway.stop()
    assert got["reply"].msg_type == MessageType.REPLY
    assert device.counters.tasks == 1 and device.counters.repeated_tasks == 0
    assert counters.publishes == 1 and counters.resends == 0 and counters.replies == 1
    phi = reply_vector_of(got["reply"])
    reference = client_app_call(make_client_app(SPEC, stream_for_device))(
        task_message(PLAN, THETA0, 1, 0, SEED)
    )
    from tinyfleet.server.async_rounds import reply_vector

    assert phi.tobytes() == reply_vector(reference, THETA0.shape).tobytes()


def reply_vector_of(reply) -> np.ndarray:
    return reply.arrays[0].to_float32()
