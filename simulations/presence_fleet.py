"""A presence fleet under the knowledge graph: rooms describe their sensors; only rooms
with the sensors the presence model needs train.

Each simulated room publishes a DEVICE DESCRIPTION (docs/protocol.md) listing its
multisensor's modalities (:data:`ROOM_SENSORS`: CO2, temperature, humidity, light);
the graph turns each into a ``sosa:Sensor`` that ``sosa:observes`` its observable
property (``tfo:CO2Concentration`` ...). The presence model card's modality is ``co2``
(the one sensor presence detection cannot do without), so matchmaking leaves a room
without a CO2 sensor out of every round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinyfleet.device.mqtt_client import default_description

ROOM_SENSORS = ("co2", "temperature", "humidity", "light")


def room_description(
    device_id: str, fleet: str = "default", sensors: Sequence[str] = ROOM_SENSORS
) -> dict[str, Any]:
    """A simulated room's self-description: the reference board's budget, its sensors."""
    return dict(
        default_description(device_id, fleet),
        board="tinyfleet simulated room multisensor",
        sensors=list(sensors),
    )


def train_with_matchmaking(
    model_card: Mapping[str, Any],
    descriptions: Mapping[str, Mapping[str, Any]],
    rounds: int,
    seed: int = 0,
) -> dict[str, Any]:
    """TinyReptile on the presence fleet ``descriptions`` (device ids in index order),
    only over the devices the knowledge graph finds eligible for ``model_card``.

    Returns ``{"eligible": [ids], "trained": [id per round], "kg": KnowledgeGraph}``
    (the caller closes the graph).
    """
    from tinyfleet.device.wire.contract import RoundPlan
    from tinyfleet.ontology.store import KnowledgeGraph
    from tinyfleet.server.fleet_kg import FleetKnowledge, RecordingCall
    from tinyfleet.server.grid import client_app_call
    from tinyfleet.server.run import quiet_flower, run_in_process
    from tinyfleet.server.sampling import SeededSampler
    from tinyfleet.server.strategies import STRATEGIES
    from tinyfleet.simulations.clientapp import make_client_app
    from tinyfleet.simulations.fleet import Fleet
    from tinyfleet.simulations.runner import initial_head, settings_for
    from tinyfleet.simulations.usecase import get_use_case

    quiet_flower()
    ids = list(descriptions)
    kg = KnowledgeGraph.memory()
    knowledge = FleetKnowledge(kg, model_card)
    knowledge.register_devices(descriptions)
    eligible = knowledge.eligible_indices(ids)
    use_case = get_use_case("presence")
    settings = settings_for(use_case, seed=seed, rounds=rounds, devices=len(ids))
    fleet = Fleet(use_case, use_case.make_backbone())
    plan = RoundPlan("online", settings.inner_lr, k=settings.k, arena_bytes=fleet.arena_bytes)
    strategy = STRATEGIES["tinyreptile"](
        plan,
        clients_per_round=1,
        beta0=settings.beta0,
        num_devices=len(ids),
        seed=seed,
        num_rounds=rounds,
        min_available_nodes=1,
        sampler=SeededSampler(len(ids), seed, eligible=lambda _round: eligible),
    )
    app = make_client_app(use_case.head_spec, fleet.stream_for_device(), fleet.macs_per_sample)
    call = RecordingCall(client_app_call(app))
    final, _ = run_in_process(strategy, call, len(ids), initial_head(use_case, seed), rounds)
    trained = [ids[i] for r in sorted(call.rounds) for i in call.rounds[r].device_indices]
    return {
        "eligible": [ids[i] for i in eligible],
        "trained": trained,
        "final": np.asarray(final),
        "kg": kg,
    }
