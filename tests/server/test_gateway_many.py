"""``MqttGateway.request_many``: a fleet-wide round from one thread, against real Mosquitto.

Every answered task carries exactly the bytes the device's round work gives for that
task (computed here without MQTT); a device that never answers costs only its own task
(a :class:`GatewayTimeout` in its place), and nothing stays pending afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinyfleet.device import wire
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt_client import DeviceSettings, MqttDevice, RoundTaskHandler
from tinyfleet.device.rounds import run_reply_round
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.device.wire.topics import device_ids
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.gateway import GatewaySettings, GatewayTimeout, MqttGateway
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.mqtt

SEED = 5
SPEC = get_use_case("sine").head_spec
PLAN = RoundPlan("online", inner_lr=0.02, k=4)


def stream(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def test_request_many_matches_the_device_work_and_isolates_a_silent_device(
    broker: ManagedBroker,
) -> None:
    fleet, live = "many", 5
    ids = device_ids(live + 1)  # the last one never connects
    theta = flatten(init_params(SPEC, np.random.default_rng(SEED)))
    devices = [
        MqttDevice(
            DeviceSettings(ids[i], broker.host, broker.port, fleet=fleet),
            RoundTaskHandler(SPEC, stream, i),
        ).start(wait=10)
        for i in range(live)
    ]
    settings = GatewaySettings(fleet=fleet, round_timeout=0.5, retries=0)
    try:
        with MqttGateway(broker.address(), settings) as gateway:
            gateway.wait_for_devices(ids[:live], timeout=10)
            config = {**PLAN.to_config(), "seed": SEED, "round": 3}
            tasks = [
                (d, 3, {**config, "device-index": i}, [wire.float32_array("0", theta)])
                for i, d in enumerate(ids)
            ]
            results = gateway.request_many(tasks, window=2)
            assert not gateway._pending  # every task closed, answered or not
    finally:
        for d in devices:
            d.stop(graceful=False)

    assert len(results) == live + 1
    assert isinstance(results[-1], GatewayTimeout)
    for i, result in enumerate(results[:live]):
        assert isinstance(result, wire.WireMessage) and result.device_id == ids[i]
        expected, metrics = run_reply_round(
            theta,
            {**config, "device-index": i},
            SPEC,
            stream,
            array_name="0",
            device_id=ids[i],
            task_bytes=0,
        )
        assert result.arrays[0].values.tobytes() == expected.values.tobytes()
        assert result.fields_dict()["loss"] == metrics["loss"]
