"""A poisoning device over a real Mosquitto: the bound refuses, the device is quarantined
and recorded as such in the knowledge graph, and the run matches the in-process run with
the same liar bit for bit (nothing honest lost, nothing applied twice)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, Error, Message, MetricRecord, RecordDict

from tinyfleet.device import wire
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt_client import TaskHandler
from tinyfleet.device.wire import WireMessage
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, RoundPlan
from tinyfleet.device.wire.topics import device_ids
from tinyfleet.ontology.store import KnowledgeGraph
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.fleet_kg import FleetKnowledge
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import quiet_flower, run_in_process
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = [pytest.mark.faults, pytest.mark.mqtt]
quiet_flower()

SEED = 7
SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)
DEVICES, ROUNDS, LIAR = 4, 24, 1
CARD = Path(__file__).parents[2] / "ontology" / "examples" / "model-sine-head.json"


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def lie(theta: np.ndarray, phi: np.ndarray, round_: int) -> np.ndarray:
    """1e30 in odd rounds, 1000x the honest update in even ones."""
    if round_ % 2:
        return np.full_like(phi, 1e30)
    return (theta + 1000.0 * (phi - theta)).astype(np.float32)


def inproc_with_liar(
    bad: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
) -> tuple[np.ndarray, TinyReptile]:
    """The run in process, the LIAR replying ``bad(theta, phi, round)`` instead of phi."""
    honest = client_app_call(make_client_app(SPEC, stream_for_device))

    def call(message: Message) -> Message:
        reply = honest(message)
        config = message.content["config"]
        if int(config[KEY_DEVICE_INDEX]) != LIAR:  # type: ignore[index,arg-type]
            return reply
        theta = message.content["arrays"].to_numpy_ndarrays()[0]  # type: ignore[union-attr]
        phi = reply.content["arrays"].to_numpy_ndarrays()[0]  # type: ignore[union-attr]
        lied = bad(theta, phi, int(config["round"]))  # type: ignore[index,arg-type]
        metrics = MetricRecord(dict(reply.content["metrics"]))  # type: ignore[arg-type]
        return Message(
            RecordDict({"arrays": ArrayRecord([lied]), "metrics": metrics}), reply_to=message
        )

    strategy = TinyReptile(PLAN, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)
    final, _ = run_in_process(strategy, call, DEVICES, INITIAL, ROUNDS)
    return final, strategy


def inproc_reference() -> tuple[np.ndarray, TinyReptile]:
    return inproc_with_liar(lie)


def test_poisoning_device_over_mqtt_is_refused_quarantined_and_recorded(
    broker: ManagedBroker,
) -> None:
    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        if index != LIAR:
            return handler

        def lying(task: WireMessage):
            fields, arrays = handler(task)
            theta = task.arrays[0].to_float32()
            bad = lie(theta, arrays[0].to_float32(), task.round)
            return fields, [wire.float32_array(arrays[0].name, bad)]

        return lying

    kg = KnowledgeGraph.memory()
    knowledge = FleetKnowledge(kg, __import__("json").loads(CARD.read_text()))
    ids = device_ids(DEVICES)
    with run_mqtt_fleet(
        SPEC,
        stream_for_device,
        DEVICES,
        broker_url=f"mqtt://{broker.host}:{broker.port}",
        fleet="poison",
        round_timeout=10,
        wrap_handler=wrap,
    ) as fleet:
        strategy = TinyReptile(
            PLAN,
            num_devices=DEVICES,
            seed=SEED,
            num_rounds=ROUNDS,
            on_quarantine=lambda d, r, why: knowledge.record_quarantine(ids[d], r, why),
        )
        got, _ = run_in_process(strategy, fleet.client_call, DEVICES, INITIAL, ROUNDS)
    expected, reference = inproc_reference()
    assert got.tobytes() == expected.tobytes()
    counters = strategy.counters
    assert counters.bounded_replies == 3 == reference.counters.bounded_replies
    assert counters.rejected_by_device == {LIAR: 3}
    assert counters.accepted_replies == ROUNDS - 3 and counters.duplicate_replies == 0
    assert list(strategy.quarantine.quarantined) == [LIAR]
    assert np.max(np.abs(got)) < 100
    assert [iri.rsplit("/", 1)[-1] for iri in knowledge.quarantined()] == [ids[LIAR]]
    kg.close()


def test_nan_replies_over_mqtt_count_against_the_device_as_in_process(
    broker: ManagedBroker,
) -> None:
    """A device replying NaN is refused by the gateway (before it becomes a Message); the
    relay's error reply says so (``ERROR_CODE_REFUSED``), so the strategy holds it against
    the device exactly as the in-process check does: same refusals, same quarantine, same
    final parameters bit for bit."""
    from tinyfleet.server.replies import ERROR_CODE_REFUSED, refused_by_relay

    def wrap(index: int, handler: TaskHandler) -> TaskHandler:
        if index != LIAR:
            return handler

        def nan(task: WireMessage):
            fields, arrays = handler(task)
            bad = np.full_like(arrays[0].to_float32(), np.nan)
            return fields, [wire.float32_array(arrays[0].name, bad)]

        return nan

    with run_mqtt_fleet(
        SPEC,
        stream_for_device,
        DEVICES,
        broker_url=f"mqtt://{broker.host}:{broker.port}",
        fleet="poison-nan",
        round_timeout=10,
        wrap_handler=wrap,
    ) as fleet:
        strategy = TinyReptile(PLAN, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)
        got, _ = run_in_process(strategy, fleet.client_call, DEVICES, INITIAL, ROUNDS)
    expected, reference = inproc_with_liar(lambda _theta, phi, _round: np.full_like(phi, np.nan))
    assert got.tobytes() == expected.tobytes()
    counters = strategy.counters
    assert counters.rejected_by_device == {LIAR: 3} == reference.counters.rejected_by_device
    assert counters.accepted_replies == ROUNDS - 3 == reference.counters.accepted_replies
    assert list(strategy.quarantine.quarantined) == [LIAR] == list(reference.quarantine.quarantined)
    # A transport failure (here a timeout) is not held against the device; refused content is.
    request = Message(RecordDict(), dst_node_id=1, message_type="train")
    for code, held in ((103, False), (ERROR_CODE_REFUSED, True)):
        error = Message(Error(code=code, reason="NaN or Inf values"), reply_to=request)
        assert (refused_by_relay(error) is not None) is held
