"""The compiled shapes refuse exactly what pyshacl refuses (differential test).

Random batches of generated devices (plus models, rounds and deployments) are broken in
random ways (a fact dropped, doubled, mistyped, out of range, a link to an untyped node,
a string where the shapes list plain literals ...); the compiled checker must report the
same (focus, path, message) results as pyshacl on the same data, and a store must refuse
such a batch as a whole and stay unchanged.
"""

from __future__ import annotations

import random

import pytest
from rdflib import RDF, XSD, Graph, Literal, URIRef

from tinyfleet.ontology.compiled_shapes import SH, Unsupported, compile_shapes, compiled
from tinyfleet.ontology.errors import ShapeViolation
from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.extract_model import card_to_rdf
from tinyfleet.ontology.fleetgen import generate_cards, generate_devices
from tinyfleet.ontology.namespaces import PROV, SCHEMA, TFO
from tinyfleet.ontology.provenance import deployment_to_rdf, round_to_rdf
from tinyfleet.ontology.resources import shapes_graph
from tinyfleet.ontology.store import KnowledgeGraph
from tinyfleet.ontology.validation import Violation, _checker, pyshacl_violations, violations_of

ROUND = {
    "round": 3,
    "strategy": "tinyreptile",
    "device_id": ["dev-000001", "dev-000002"],
    "model_version_in": "3",
    "model_version_out": "4",
    "metrics": {"loss": 0.5},
    "started": "2026-11-29T23:00:00Z",
    "ended": "2026-11-29T23:00:01Z",
}

# replacement objects for a chosen triple: each is valid or invalid depending on where
# it lands, which is the point: pyshacl decides, the compiled checks must agree
ODD_VALUES = [
    Literal(-5),
    Literal(0),
    Literal("12", datatype=XSD.integer),
    Literal("twelve", datatype=XSD.integer),
    Literal("7"),
    Literal(3.5),
    Literal("3.5", datatype=XSD.decimal),
    Literal("x", lang="en"),
    Literal("x", datatype=XSD.string),
    Literal("float-head"),
    Literal("float-head", datatype=XSD.string),
    Literal("int8"),
    Literal("bad id!"),
    Literal("1x8x8x1"),
    Literal("1x8x"),
    Literal("camera=1x96x96x1"),
    Literal("2026-11-29T22:00:00Z", datatype=XSD.dateTime),
    Literal("2026-11-30T22:00:00", datatype=XSD.dateTime),
    Literal(True),
    URIRef("https://w3id.org/tinyfleet/ontology#camera"),
    URIRef("https://w3id.org/tinyfleet/ontology#nothing"),
    URIRef("https://w3id.org/tinyfleet/id/untyped"),
    TFO.Firmware,
]


def _mutate(graph: Graph, rng: random.Random) -> str:
    """Break (or harmlessly change) ``graph`` in one random way; return what was done."""
    triples = sorted(graph, key=lambda t: (str(t[0]), str(t[1]), str(t[2])))
    s, p, o = rng.choice(triples)
    kind = rng.choice(["drop", "double", "replace", "replace", "untype", "retype"])
    if kind == "drop":
        graph.remove((s, p, o))
    elif kind == "double":
        graph.add((s, p, rng.choice(ODD_VALUES)))
    elif kind == "replace":
        graph.remove((s, p, o))
        graph.add((s, p, rng.choice(ODD_VALUES)))
    elif kind == "untype":
        for t in list(graph.triples((o if isinstance(o, URIRef) else s, RDF.type, None))):
            graph.remove(t)
    else:
        graph.add((s, RDF.type, rng.choice([TFO.Device, TFO.TrainingRound, TFO.TensorSpec])))
    return f"{kind} {p}"


def _batch(rng: random.Random, seed: int, broken: int) -> list[Graph]:
    devices = [device_to_rdf(d) for d in generate_devices(rng.randint(1, 6), seed=seed)]
    extra = [card_to_rdf(c) for c in generate_cards(rng.randint(0, 2), seed=seed)]
    extra.append(round_to_rdf({**ROUND, "round": seed}))
    extra.append(deployment_to_rdf("dev-000001", "model-00@1", 1.78e9))
    graphs = devices + extra
    for _ in range(broken):
        _mutate(rng.choice(graphs), rng)
    return graphs


def _union(graphs: list[Graph]) -> Graph:
    union = Graph()
    for graph in graphs:
        for triple in graph:
            union.add(triple)
    return union


def _compiled(graphs: list[Graph]) -> list[Violation]:
    """The compiled checks alone (no fallback to pyshacl)."""
    return [Violation(*found) for found in _checker().violations(graphs)]


@pytest.mark.parametrize("seed", range(120))
def test_compiled_checks_report_what_pyshacl_reports(seed: int) -> None:
    rng = random.Random(seed)
    graphs = _batch(rng, seed, broken=0 if seed % 4 == 0 else rng.randint(1, 4))
    assert _compiled(graphs) == pyshacl_violations(_union(graphs))
    assert violations_of(graphs) == _compiled(graphs)


def test_the_differential_cases_cover_both_verdicts() -> None:
    verdicts = []
    for seed in range(120):
        rng = random.Random(seed)
        graphs = _batch(rng, seed, broken=0 if seed % 4 == 0 else rng.randint(1, 4))
        verdicts.append(bool(_compiled(graphs)))
    assert 20 <= sum(verdicts) <= 100  # both valid and invalid batches, many of each


def test_a_store_refuses_a_batch_with_one_bad_device_and_stays_unchanged() -> None:
    kg = KnowledgeGraph.memory()
    graphs = [device_to_rdf(d) for d in generate_devices(20, seed=1)]
    bad = graphs[13]
    (dev,) = bad.subjects(RDF.type, TFO.Device)
    bad.remove((dev, TFO.ramBytes, None))
    bad.add((dev, TFO.ramBytes, Literal("262144")))  # a string: pyshacl refuses it too
    expected = pyshacl_violations(_union(graphs))
    assert [v.message for v in expected] == [
        "A device needs exactly one tfo:ramBytes, a positive integer (ram_bytes)."
    ]
    with pytest.raises(ShapeViolation) as refused:
        kg.add_all((g, [dev]) for g in graphs)
    assert refused.value.messages == [str(v) for v in expected]
    assert len(kg) == 0


def test_duplicate_descriptions_in_one_batch_are_checked_together() -> None:
    # each description alone conforms; written together the device would have two RAMs
    first, second = (device_to_rdf(d) for d in generate_devices(2, seed=4))
    (dev,) = second.subjects(RDF.type, TFO.Device)
    twin = Graph()
    for s, p, o in first:
        twin.add((dev if s == next(first.subjects(RDF.type, TFO.Device)) else s, p, o))
    twin.set((dev, SCHEMA.identifier, second.value(dev, SCHEMA.identifier)))
    twin.set((dev, TFO.ramBytes, Literal(4096)))
    assert violations_of([twin]) == [] and violations_of([second]) == []
    found = _compiled([twin, second])
    assert found == pyshacl_violations(_union([twin, second]))
    assert any("tfo:ramBytes" in v.message for v in found)


def test_unsupported_shapes_fall_back_to_pyshacl() -> None:
    shapes = Graph()
    for triple in shapes_graph():
        shapes.add(triple)
    node = next(iter(shapes.subjects(RDF.type, SH.NodeShape)))
    shapes.add((node, SH.closed, Literal(True)))
    with pytest.raises(Unsupported):
        compile_shapes(shapes)
    members = {m for o in shapes_graph().objects(None, SH["or"]) for m in shapes.items(o)}
    assert len(compiled()) == len(set(shapes_graph().subjects(SH.property, None)) - members)


@pytest.mark.parametrize("facts", [(), ("round",), ("reason",), ("round", "reason")])
def test_quarantine_both_or_neither_is_compiled_and_agrees_with_pyshacl(facts: tuple) -> None:
    """The device shape's sh:or (quarantine round and reason, both or neither) is checked
    by the compiled shapes, not by a fallback to pyshacl, with pyshacl's result."""
    graph = device_to_rdf(generate_devices(1, seed=5)[0])
    (device,) = graph.subjects(RDF.type, TFO.Device)
    if "round" in facts:
        graph.add((device, TFO.quarantinedInRound, Literal(4)))
    if "reason" in facts:
        graph.add((device, TFO.quarantineReason, Literal("diverged")))
    found = _compiled([graph])
    assert found == pyshacl_violations(graph)
    assert bool(found) == (len(facts) == 1)


def test_a_round_that_ends_before_it_starts_is_refused_by_both() -> None:
    graph = round_to_rdf(ROUND)
    (rnd,) = graph.subjects(RDF.type, TFO.TrainingRound)
    graph.set((rnd, PROV.endedAtTime, Literal("2026-11-29T22:00:00Z", datatype=XSD.dateTime)))
    found = _compiled([graph])
    assert found == pyshacl_violations(graph)
    assert any("cannot end before it starts" in v.message for v in found)
