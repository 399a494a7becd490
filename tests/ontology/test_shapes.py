"""Every example validates; every SHACL shape has a conforming and a violating case."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rdflib import RDF, Graph, Literal, URIRef

from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.extract_model import card_to_rdf
from tinyfleet.ontology.loaders import load_description
from tinyfleet.ontology.namespaces import NNET, PROV, SCHEMA, TFO
from tinyfleet.ontology.provenance import deployment_to_rdf, round_to_rdf
from tinyfleet.ontology.resources import EXAMPLES_DIR, shapes_graph
from tinyfleet.ontology.validation import violations


def example(name: str) -> dict[str, Any]:
    """A fresh copy of an example JSON document (safe to mutate)."""
    return json.loads((EXAMPLES_DIR / name).read_text())


EXAMPLE_FILES = sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix in (".json", ".ttl"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_validates(path: Any) -> None:
    assert violations(load_description(path).graph) == []


def test_examples_cover_the_inventory() -> None:
    kinds = [load_description(p).kind for p in EXAMPLE_FILES]
    assert kinds.count("device") >= 7 and kinds.count("model") >= 4
    assert {"thing-description", "round", "rdf"} <= set(kinds)


ROUND = {
    "round": 3,
    "strategy": "tinyreptile",
    "device_id": "nano33-0001",
    "model_version_in": "3",
    "model_version_out": "4",
    "metrics": {"loss": 0.5},
    "bytes_up": 100,
    "bytes_down": 100,
    "started": "2026-11-29T23:00:00Z",
    "ended": "2026-11-29T23:00:01Z",
}


def _device() -> Graph:
    return device_to_rdf(example("device-nano33-0001.json"))


def _device_with_shape() -> Graph:
    return device_to_rdf(example("device-f746disco-0001.json"))


def _model() -> Graph:
    return card_to_rdf(example("model-digits-backbone.json"))


def _round() -> Graph:
    return round_to_rdf(dict(ROUND))


def _deployment() -> Graph:
    return deployment_to_rdf("nano33-0001", "sine-head@1", "2026-11-29T23:00:00Z")


def _drop(predicate: URIRef) -> Callable[[Graph], None]:
    def mutate(g: Graph) -> None:
        g.remove((None, predicate, None))

    return mutate


def _set(predicate: URIRef, value: Any) -> Callable[[Graph], None]:
    def mutate(g: Graph) -> None:
        subjects = set(g.subjects(predicate, None))
        g.remove((None, predicate, None))
        for s in subjects:
            g.add((s, predicate, value))

    return mutate


def _retype_objects(predicate: URIRef) -> Callable[[Graph], None]:
    def mutate(g: Graph) -> None:
        for obj in set(g.objects(None, predicate)):
            g.remove((obj, RDF.type, None))

    return mutate


# shape local name -> (builder of a conforming graph, mutation, expected sh:message start)
CASES: dict[str, tuple[Callable[[], Graph], Callable[[Graph], None], str]] = {
    "DeviceShape": (_device, _drop(TFO.ramBytes), "A device needs exactly one tfo:ramBytes"),
    "CapabilityProfileShape": (
        _device,
        _drop(TFO.profileFirmware),
        "A capability profile needs exactly one tfo:profileFirmware",
    ),
    "MicrocontrollerShape": (_device, _drop(SCHEMA.name), "A microcontroller needs exactly one"),
    "SensorShape": (
        _device_with_shape,
        _set(TFO.sampleShape, Literal("96 by 96")),
        "tfo:sampleShape must be dimensions",
    ),
    "FirmwareShape": (_device, _drop(TFO.supportsOperator), "A firmware build must list"),
    "ModelShape": (
        _model,
        _set(TFO.arenaBytes, Literal("3 KB")),
        "A model needs exactly one tfo:arenaBytes",
    ),
    "TrainableHeadShape": (
        _model,
        _drop(TFO.trainRamBytes),
        "A head needs exactly one tfo:trainRamBytes",
    ),
    "TensorSpecShape": (
        _model,
        _set(TFO.dtype, Literal("int7")),
        "A tensor needs exactly one tfo:dtype",
    ),
    "LayerShape": (_model, _drop(NNET.hasIndex), "A layer needs exactly one nnet:hasIndex"),
    "DeploymentShape": (
        _deployment,
        _drop(TFO.deployedOn),
        "A deployment needs exactly one tfo:deployedOn",
    ),
    "TrainingRoundShape": (
        _round,
        _set(PROV.startedAtTime, Literal("yesterday")),
        "A round needs exactly one prov:startedAtTime",
    ),
    "MetricShape": (_round, _drop(SCHEMA.value), "A metric needs exactly one schema:value"),
    "ModelVersionShape": (_round, _drop(SCHEMA.version), "A model version needs exactly one"),
}


def test_cases_cover_every_shape() -> None:
    sh = URIRef("http://www.w3.org/ns/shacl#NodeShape")
    names = {str(s).rsplit("#", 1)[-1] for s in shapes_graph().subjects(RDF.type, sh)}
    assert names == set(CASES)


@pytest.mark.parametrize("shape", sorted(CASES))
def test_shape_conforming_and_violating(shape: str) -> None:
    build, mutate, message = CASES[shape]
    graph = build()
    assert violations(graph) == []
    mutate(graph)
    found = violations(graph)
    assert found, f"{shape}: the mutation was not caught"
    assert any(v.message.startswith(message) for v in found), [v.message for v in found]


def test_round_ending_before_it_starts_is_refused() -> None:
    record = dict(ROUND, started="2026-11-29T23:00:05Z")
    messages = [v.message for v in violations(round_to_rdf(record))]
    assert messages == [
        "A round cannot end before it starts (prov:startedAtTime <= prov:endedAtTime)."
    ]


def test_unknown_sensor_modality_is_refused() -> None:
    description = example("device-pico-0001.json")
    description["sensors"] = ["sonar"]
    messages = {v.message for v in violations(device_to_rdf(description))}
    assert any(m.startswith("A sensor needs exactly one sosa:observes") for m in messages)


def _quarantined_device(round_value: Any = 7, reason: Any = "update norm 45 x model norm") -> Graph:
    """A device as the server marks it quarantined (server/fleet_kg.py)."""
    from tinyfleet.ontology.namespaces import device_iri

    graph, device = _device(), device_iri("nano33-0001")
    if round_value is not None:
        graph.add((device, TFO.quarantinedInRound, Literal(round_value)))
    if reason is not None:
        graph.add((device, TFO.quarantineReason, Literal(reason)))
    return graph


def test_device_shape_quarantine_conforming_and_violating() -> None:
    assert violations(_quarantined_device()) == []
    cases = {
        "A quarantined device needs both": _quarantined_device(reason=None),
        "A quarantined device needs both ": _quarantined_device(round_value=None),
        "A device has at most one tfo:quarantinedInRound": _quarantined_device(round_value=0),
        "A device has at most one tfo:quarantinedInRound, ": _quarantined_device(
            round_value="seven"
        ),
        "A device has at most one tfo:quarantineReason": _quarantined_device(reason=3),
    }
    for message, graph in cases.items():
        found = [v.message for v in violations(graph)]
        assert any(m.startswith(message.strip()) for m in found), (message, found)
    twice = _quarantined_device()
    twice.add((next(iter(twice.subjects(TFO.quarantinedInRound, None))), TFO.quarantinedInRound,
               Literal(9)))  # fmt: skip
    assert any("at most one tfo:quarantinedInRound" in v.message for v in violations(twice))
