"""The gateway takes every array encoding the codec carries: int8 and Top-P% sparse
replies reach the strategy as their dense float32 values (real Mosquitto)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, RecordDict

from tinyfleet.device import wire
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt_client import TaskHandler
from tinyfleet.device.wire import WireArray, WireMessage
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.records import ARRAYS_KEY
from tinyfleet.server.run import run_in_process
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.mqtt

SEED = 5
SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)
DEVICES, ROUNDS = 3, 6


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def strategy() -> TinyReptile:
    return TinyReptile(PLAN, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)


COMPRESSIONS = {
    "int8": lambda name, phi: wire.int8_array(name, phi),
    "sparse-int8": lambda name, phi: wire.sparse_top_p(name, phi, 0.25, int8=True),
    "sparse-f32": lambda name, phi: wire.sparse_top_p(name, phi, 0.5),
}


@pytest.mark.parametrize("kind", sorted(COMPRESSIONS))
def test_compressed_replies_are_applied_as_their_dense_values(
    broker: ManagedBroker, kind: str
) -> None:
    compress = COMPRESSIONS[kind]

    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        def compressed(task: WireMessage):
            fields, arrays = handler(task)
            return fields, [compress(arrays[0].name, arrays[0].to_float32())]

        return compressed

    with run_mqtt_fleet(
        SPEC,
        stream_for_device,
        DEVICES,
        broker_url=f"mqtt://{broker.host}:{broker.port}",
        fleet=f"compressed-{kind}",
        round_timeout=10,
        wrap_handler=wrap,
    ) as fleet:
        strat = strategy()
        got, _ = run_in_process(strat, fleet.client_call, DEVICES, INITIAL, ROUNDS)
        invalid = fleet.counters()["invalid"]

    # Reference: the same rounds in process, phi passed through the same encoding.
    inner = client_app_call(make_client_app(SPEC, stream_for_device))

    def call(message: Message) -> Message:
        reply = inner(message)
        phi = reply.content.array_records[ARRAYS_KEY].to_numpy_ndarrays()[0]
        dense: WireArray = compress("phi", phi)
        content = RecordDict(
            {ARRAYS_KEY: ArrayRecord([dense.to_float32()]), "metrics": reply.content["metrics"]}
        )
        return Message(content, reply_to=message)

    expected, _ = run_in_process(strategy(), call, DEVICES, INITIAL, ROUNDS)
    assert invalid == 0 and strat.counters.accepted_replies == ROUNDS
    assert got.tobytes() == expected.tobytes()
    assert not np.array_equal(got, INITIAL)
