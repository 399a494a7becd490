"""No lost rounds (issue 9: kill -9 one device for 3 s lost 307 of 3,000 rounds): a device
that drops mid-round and comes back gets the same task again, its round counts once, and
the run equals the undisturbed run bit for bit."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt_client import TaskHandler
from tinyfleet.device.wire import WireMessage
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import quiet_flower, run_in_process
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = [pytest.mark.faults, pytest.mark.mqtt]
quiet_flower()

SEED = 13
SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def strategy(devices: int, rounds: int) -> TinyReptile:
    return TinyReptile(PLAN, num_devices=devices, seed=SEED, num_rounds=rounds)


def test_device_dropping_mid_round_and_coming_back_loses_no_round(
    broker: ManagedBroker,
) -> None:
    victim, devices, rounds = 1, 3, 10
    started, release = threading.Event(), threading.Event()
    calls = {"n": 0}

    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        if index != victim:
            return handler

        def dying(task: WireMessage):
            calls["n"] += 1
            if calls["n"] == 1:  # the first task: lose power while training
                started.set()
                release.wait(30)
            return handler(task)

        return dying

    with run_mqtt_fleet(
        SPEC, stream_for_device, devices, broker_url=f"mqtt://{broker.host}:{broker.port}",
        fleet="comeback", round_timeout=20, offline_wait=15, wrap_handler=wrap,
    ) as fleet:  # fmt: skip
        dead = fleet.devices[victim]

        def cut_power_then_restore() -> None:
            if started.wait(30):
                sock = dead.client.socket()
                assert sock is not None
                sock.shutdown(2)  # type: ignore[union-attr]  # no DISCONNECT: Last Will
                threading.Event().wait(1.0)  # offline for a second
                release.set()  # the handler returns; paho reconnects, says online

        killer = threading.Thread(target=cut_power_then_restore)
        killer.start()
        strat = strategy(devices, rounds)
        got, _ = run_in_process(strat, fleet.client_call, devices, INITIAL, rounds)
        release.set()
        killer.join()
        counters = fleet.counters()
    expected, _ = run_in_process(
        strategy(devices, rounds),
        client_app_call(make_client_app(SPEC, stream_for_device)),
        devices, INITIAL, rounds,
    )  # fmt: skip
    assert started.is_set()
    assert got.tobytes() == expected.tobytes()  # no round lost, none applied twice
    assert strat.counters.accepted_replies == rounds
    assert strat.counters.rejected_replies == 0
    assert counters["drops"] >= 1 and counters["recovered"] >= 1
