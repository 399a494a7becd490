"""Same seed, same numbers: TinyReptile over MQTT equals the in-process run, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.run import run_in_process
from tinyfleet.server.strategies import Reptile, TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.mqtt

SEED, DEVICES, ROUNDS = 7, 4, 12


def _stream_for_device(seed: int, index: int):
    use_case = get_use_case("sine")
    return use_case.sample_task(device_task_rng(seed, index, "train"), "train")


@pytest.mark.parametrize("algorithm", ["tinyreptile", "reptile"])
def test_mqtt_equals_in_process(broker: ManagedBroker, algorithm: str) -> None:
    spec = get_use_case("sine").head_spec
    initial = flatten(init_params(spec, np.random.default_rng(SEED)))

    def strategy():
        if algorithm == "tinyreptile":
            plan = RoundPlan("online", inner_lr=0.02, k=5)
            return TinyReptile(plan, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)
        plan = RoundPlan("batch", inner_lr=0.02, support_size=8, batch_size=4, epochs=2)
        return Reptile(plan, num_devices=DEVICES, clients_per_round=2, seed=SEED, num_rounds=ROUNDS)

    app = make_client_app(spec, _stream_for_device)
    expected, _ = run_in_process(strategy(), app, DEVICES, initial, ROUNDS)
    url = f"mqtt://{broker.host}:{broker.port}"
    with run_mqtt_fleet(
        spec, _stream_for_device, DEVICES, broker_url=url, fleet=f"eq-{algorithm}"
    ) as fleet:
        strat = strategy()
        got, _ = run_in_process(strat, fleet.client_call, DEVICES, initial, ROUNDS)
        counters = fleet.counters()
    assert not np.array_equal(expected, initial)
    assert got.dtype == np.float32
    assert got.tobytes() == expected.tobytes()
    assert strat.counters.accepted_replies == counters["replies"] == counters["device-tasks"]
    assert counters["duplicates"] == counters["malformed"] == counters["timeouts"] == 0


def test_devices_in_worker_processes_equal_in_process(broker: ManagedBroker) -> None:
    """Large fleets put their device clients in worker processes: same numbers."""
    from tinyfleet.simulations.device_cli import use_case_stream_factory

    spec = get_use_case("sine").head_spec
    initial = flatten(init_params(spec, np.random.default_rng(SEED)))
    devices, rounds = 6, 10
    plan = RoundPlan("online", inner_lr=0.02, k=5)

    def strategy() -> TinyReptile:
        return TinyReptile(plan, num_devices=devices, seed=SEED, num_rounds=rounds)

    expected, _ = run_in_process(
        strategy(), make_client_app(spec, _stream_for_device), devices, initial, rounds
    )
    url = f"mqtt://{broker.host}:{broker.port}"
    with run_mqtt_fleet(
        spec,
        _stream_for_device,
        devices,
        broker_url=url,
        fleet="workers",
        stream_factory=use_case_stream_factory("sine"),
        devices_per_process=3,
    ) as fleet:
        assert fleet.devices == []  # all remote
        got, _ = run_in_process(strategy(), fleet.client_call, devices, initial, rounds)
    assert got.tobytes() == expected.tobytes()
    assert fleet.counters()["device-tasks"] == rounds


def test_gateway_clientapp_equals_in_process(broker: ManagedBroker) -> None:
    """The relay as a Flower ClientApp (what a gateway SuperNode runs): same numbers."""
    from flwr.app import Context

    from tinyfleet.device.wire.topics import device_ids
    from tinyfleet.server.gateway_flower import make_gateway_client_app

    spec = get_use_case("sine").head_spec
    initial = flatten(init_params(spec, np.random.default_rng(SEED)))
    devices, rounds = 3, 6
    plan = RoundPlan("online", inner_lr=0.02, k=5)

    def strategy() -> TinyReptile:
        return TinyReptile(plan, num_devices=devices, seed=SEED, num_rounds=rounds)

    expected, _ = run_in_process(
        strategy(), make_client_app(spec, _stream_for_device), devices, initial, rounds
    )
    url = f"mqtt://{broker.host}:{broker.port}"
    with run_mqtt_fleet(spec, _stream_for_device, devices, broker_url=url, fleet="supernode"):
        # The SuperNode's node_config names the broker, fleet and device list.
        node_config = {
            "broker": url,
            "fleet": "supernode",
            "devices": ",".join(device_ids(devices)),
        }
        started: list[object] = []

        def factory(context: Context):
            from tinyfleet.server.gateway_flower import _gateway_from_node_config

            context.node_config.update(node_config)  # type: ignore[arg-type]
            gateway, route = _gateway_from_node_config(context)
            started.append(gateway)
            return gateway, route

        app = make_gateway_client_app(factory)
        try:
            got, _ = run_in_process(strategy(), app, devices, initial, rounds)
        finally:
            for gw in started:
                gw.stop()  # type: ignore[attr-defined]
    assert len(started) == 1
    assert got.tobytes() == expected.tobytes()


def test_chunked_payloads_through_the_broker(broker: ManagedBroker) -> None:
    """A 512-byte payload limit cuts every 7 KB task and update into chunks: same numbers."""
    spec = get_use_case("sine").head_spec
    initial = flatten(init_params(spec, np.random.default_rng(SEED)))
    devices, rounds = 2, 4
    plan = RoundPlan("online", inner_lr=0.02, k=5)

    def strategy() -> TinyReptile:
        return TinyReptile(plan, num_devices=devices, seed=SEED, num_rounds=rounds)

    expected, _ = run_in_process(
        strategy(), make_client_app(spec, _stream_for_device), devices, initial, rounds
    )
    url = f"mqtt://{broker.host}:{broker.port}"
    seen: list[int] = []
    with run_mqtt_fleet(
        spec, _stream_for_device, devices, broker_url=url, fleet="chunks", max_payload=512
    ) as fleet:
        original = fleet.gateway._publish

        def counting(topic, pending):  # type: ignore[no-untyped-def]
            seen.append(len(pending.payloads))
            assert all(len(p) <= 512 for p in pending.payloads)
            original(topic, pending)

        fleet.gateway._publish = counting  # type: ignore[method-assign]
        got, _ = run_in_process(strategy(), fleet.client_call, devices, initial, rounds)
    assert got.tobytes() == expected.tobytes()
    assert len(seen) == rounds and min(seen) > 10  # ~7 KB in <= 512-byte chunks
