"""Fault tests against a real Mosquitto: the run goes on and bad input never reaches theta.

Each test runs TinyReptile over MQTT and compares the final parameters, bit for bit, with
an in-process reference run in which exactly the rounds that should fail fail. Equal
parameters mean: no bad update applied, no good update lost or applied twice.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from flwr.app import Message

from tinyfleet.device import wire
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt_client import TaskHandler
from tinyfleet.device.wire import MessageType, WireMessage
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND, RoundPlan
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import run_in_process
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.mqtt

SEED = 11
SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def strategy(devices: int, rounds: int) -> TinyReptile:
    return TinyReptile(PLAN, num_devices=devices, seed=SEED, num_rounds=rounds)


def reference(devices: int, rounds: int, fails: Callable[[int, int], bool]) -> np.ndarray:
    """In-process run where ``fails(device_index, round)`` rounds give an error reply."""
    inner = client_app_call(make_client_app(SPEC, stream_for_device))

    def call(message: Message) -> Message:
        config = message.content.config_records["config"]
        if fails(int(config[KEY_DEVICE_INDEX]), int(config[KEY_ROUND])):  # type: ignore[arg-type]
            raise RuntimeError("reference: this round fails")
        return inner(message)

    final, _ = run_in_process(strategy(devices, rounds), call, devices, INITIAL, rounds)
    return final


def url(broker: ManagedBroker) -> str:
    return f"mqtt://{broker.host}:{broker.port}"


def test_bad_updates_are_rejected_and_theta_untouched(broker: ManagedBroker) -> None:
    """NaN, Inf, wrong shape, extra array and a device ERROR each cost one round."""
    bad_rounds = {2: "nan", 3: "inf", 4: "shape", 5: "extra", 6: "error"}

    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        def lying(task: WireMessage):
            fields, arrays = handler(task)
            kind = bad_rounds.get(task.round)
            phi = arrays[0].to_float32()
            if kind == "nan":
                phi[3] = np.nan
            elif kind == "inf":
                phi[0] = -np.inf
            elif kind == "shape":
                phi = phi[:-1]
            elif kind == "error":
                raise RuntimeError("sensor unplugged")
            out = [wire.float32_array(arrays[0].name, phi)]
            if kind == "extra":
                out.append(wire.float32_array("extra", np.zeros(2, np.float32)))
            return fields, out

        return lying

    devices, rounds = 3, 8
    with run_mqtt_fleet(
        SPEC,
        stream_for_device,
        devices,
        broker_url=url(broker),
        fleet="bad-updates",
        round_timeout=10,
        wrap_handler=wrap,
    ) as fleet:
        strat = strategy(devices, rounds)
        from tinyfleet.server.run import run_in_process as run

        got, _ = run(strat, fleet.client_call, devices, INITIAL, rounds)
        counters = fleet.counters()
    expected = reference(devices, rounds, lambda i, r: r in bad_rounds)
    assert got.tobytes() == expected.tobytes()
    assert strat.counters.rejected_replies == len(bad_rounds)
    assert counters["invalid"] == 4 and counters["device_errors"] == 1


def test_garbage_duplicates_and_foreign_ids_are_dropped(broker: ManagedBroker) -> None:
    """Malformed / truncated / bad-CRC / oversized payloads, a header naming another
    device, and late duplicates of an answered task: all dropped and counted."""
    fleet_name = "garbage"
    impostor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="impostor")
    impostor.connect(broker.host, broker.port)
    impostor.loop_start()
    answered: dict[str, tuple[str, bytes]] = {}

    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        def noisy(task: WireMessage):
            fields, arrays = handler(task)
            reply = wire.encode_message(
                MessageType.REPLY,
                round=task.round,
                msg_id=task.msg_id,
                device_id=task.device_id,
                fields=fields,
                arrays=arrays,
            )
            topic = wire.topic(fleet_name, task.device_id, "update")
            if task.round == 3:
                huge = bytearray(reply[:32])
                huge[16:20] = struct.pack("<I", 50_000_000)
                bad_crc = bytearray(reply)
                bad_crc[-1] ^= 0xFF
                other = wire.encode_message(
                    MessageType.REPLY,
                    round=task.round,
                    msg_id=task.msg_id,
                    device_id="someone-else",
                    fields=fields,
                    arrays=arrays,
                )
                for payload in (b"garbage", reply[:-5], bytes(bad_crc), bytes(huge), other):
                    impostor.publish(topic, payload, qos=1).wait_for_publish(2)
                answered["reply"] = (topic, reply)
            if task.round == 4:  # the answered round 3 arrives again, twice
                late_topic, late = answered["reply"]
                for _ in range(2):
                    impostor.publish(late_topic, late, qos=1).wait_for_publish(2)
            return fields, arrays

        return noisy

    devices, rounds = 2, 6
    try:
        with run_mqtt_fleet(
            SPEC,
            stream_for_device,
            devices,
            broker_url=url(broker),
            fleet=fleet_name,
            round_timeout=10,
            wrap_handler=wrap,
        ) as fleet:
            strat = strategy(devices, rounds)
            got, _ = run_in_process(strat, fleet.client_call, devices, INITIAL, rounds)
            deadline = time.monotonic() + 5
            while fleet.gateway.counters.duplicates < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            counters = fleet.counters()
    finally:
        impostor.disconnect()
        impostor.loop_stop()
    assert got.tobytes() == reference(devices, rounds, lambda i, r: False).tobytes()
    assert counters["malformed"] == 4
    assert counters["foreign"] == 1
    assert counters["duplicates"] == 2
    assert strat.counters.accepted_replies == rounds


def test_device_killed_mid_round(broker: ManagedBroker) -> None:
    """A device loses its connection while training: with ``offline_wait=0`` its Last Will
    fails the round fast, later rounds that pick it fail fast too, the others go on
    (the default waits for it to come back: tests/server/test_faults_rounds.py)."""
    victim, devices, rounds = 1, 3, 8
    started, release = threading.Event(), threading.Event()

    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        if index != victim:
            return handler

        def dying(task: WireMessage):
            started.set()
            release.wait(30)
            return handler(task)

        return dying

    first_victim_round = next(
        r
        for r in range(1, rounds + 1)
        if strategy(devices, rounds).sampler.select(r, 1) == [victim]
    )
    with run_mqtt_fleet(
        SPEC,
        stream_for_device,
        devices,
        broker_url=url(broker),
        fleet="killed",
        round_timeout=20,
        offline_wait=0,
        wrap_handler=wrap,
    ) as fleet:
        dead = fleet.devices[victim]

        def kill_when_busy() -> None:
            if started.wait(30):
                sock = dead.client.socket()
                assert sock is not None
                sock.shutdown(2)  # type: ignore[union-attr]  # power cut: no DISCONNECT

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        strat = strategy(devices, rounds)
        t0 = time.monotonic()
        got, _ = run_in_process(strat, fleet.client_call, devices, INITIAL, rounds)
        elapsed = time.monotonic() - t0
        counters = fleet.counters()
        release.set()
        killer.join()
        dead.client.loop_stop()
    expected = reference(devices, rounds, lambda i, r: i == victim and r >= first_victim_round)
    assert got.tobytes() == expected.tobytes()
    assert counters["drops"] >= 1
    assert strat.counters.rejected_replies >= 1
    assert elapsed < 15  # failed on the Last Will, not on the 20 s round timeout


def test_broker_restart_mid_run(own_broker: ManagedBroker) -> None:
    """The broker goes down in round 4 while a device works; everyone reconnects, the
    run finishes, and the parameters equal the undisturbed run: no update lost or doubled."""
    restarted = threading.Event()

    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        def disturbing(task: WireMessage):
            result = handler(task)
            if task.round == 4 and not restarted.is_set():
                restarted.set()
                own_broker.restart()
            return result

        return disturbing

    devices, rounds = 3, 8
    with run_mqtt_fleet(
        SPEC,
        stream_for_device,
        devices,
        broker_url=url(own_broker),
        fleet="restart",
        round_timeout=5,
        retries=3,
        fail_on_drop=False,
        wrap_handler=wrap,
    ) as fleet:
        strat = strategy(devices, rounds)
        got, _ = run_in_process(strat, fleet.client_call, devices, INITIAL, rounds)
        counters = fleet.counters()
    assert restarted.is_set()
    assert got.tobytes() == reference(devices, rounds, lambda i, r: False).tobytes()
    assert strat.counters.accepted_replies == rounds
    assert counters["connects"] >= 2  # the gateway reconnected
    assert counters["device-tasks"] == rounds  # nobody trained twice


def test_acl_refuses_publishing_under_another_id(auth_broker: ManagedBroker) -> None:
    """dev-a may answer its own task, but its forged reply to dev-b's task never reaches
    the gateway (the broker's ACL drops it): dev-b's request times out instead."""
    from tinyfleet.server.broker import GATEWAY_USER
    from tinyfleet.server.gateway import GatewaySettings, GatewayTimeout, MqttGateway

    fleet_name = "acl"
    gw_address = auth_broker.address(GATEWAY_USER, "gw-secret")
    forged: list[WireMessage] = []
    clients = {}
    for name, password in (("dev-a", "pa"), ("dev-b", "pb")):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        c.username_pw_set(name, password)
        clients[name] = c

    def on_task(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        task = wire.decode_message(message.payload)
        forged.append(task)
        reply = wire.encode_message(
            MessageType.REPLY,
            round=task.round,
            msg_id=task.msg_id,
            device_id=task.device_id,
            arrays=task.arrays,
        )
        # Every answer goes out through dev-a's session: honest for dev-a's own task,
        # forged (dev-a publishing on dev-b's topic) for dev-b's.
        clients["dev-a"].publish(wire.topic(fleet_name, task.device_id, "update"), reply, qos=1)

    wrong_password = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    wrong_password.username_pw_set("dev-a", "nope")
    assert wrong_password.connect(auth_broker.host, auth_broker.port) == 0
    wrong_password.loop_start()
    settings = GatewaySettings(fleet=fleet_name, round_timeout=1.0, retries=0)
    with MqttGateway(gw_address, settings) as gateway:
        for name, c in clients.items():
            c.on_message = on_task
            c.connect(auth_broker.host, auth_broker.port)
            c.loop_start()
            c.subscribe(wire.topic(fleet_name, name, "task"), qos=1)
        time.sleep(0.3)
        theta = [wire.float32_array("0", np.arange(4, dtype=np.float32))]
        own = gateway.request("dev-a", round=1, fields={}, arrays=theta)
        assert own.arrays[0].values.tolist() == [0, 1, 2, 3]
        # dev-b's task is answered only by dev-a's forged publish: the ACL drops it.
        with pytest.raises(GatewayTimeout):
            gateway.request("dev-b", round=2, fields={}, arrays=theta)
        counters = gateway.counters.as_dict()
    for c in [*clients.values(), wrong_password]:
        c.disconnect()
        c.loop_stop()
    assert not wrong_password.is_connected()
    assert counters["replies"] == 1 and counters["foreign"] == 0
    assert {t.device_id for t in forged} == {"dev-a", "dev-b"}
