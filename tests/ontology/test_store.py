"""The store refuses bad input with a clear error and leaves the graph unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyfleet.ontology.errors import (
    DescriptionError,
    KnowledgeGraphError,
    QuerySyntaxError,
    ShapeViolation,
)
from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.loaders import load_description
from tinyfleet.ontology.named_queries import get_named_query
from tinyfleet.ontology.namespaces import device_iri
from tinyfleet.ontology.provenance import round_to_rdf
from tinyfleet.ontology.resources import EXAMPLES_DIR
from tinyfleet.ontology.store import KnowledgeGraph


def _example(name: str) -> dict:
    return json.loads((EXAMPLES_DIR / name).read_text())


@pytest.fixture
def kg() -> KnowledgeGraph:
    graph = KnowledgeGraph.memory()
    for path in sorted(EXAMPLES_DIR.iterdir()):
        d = load_description(path)
        graph.add(d.graph, replace=d.replace)
    return graph


def _snapshot(kg: KnowledgeGraph) -> set:
    return set(kg.graph)


def test_device_missing_ram_is_refused_with_the_shape_message(kg: KnowledgeGraph) -> None:
    before = _snapshot(kg)
    description = _example("device-pico-0001.json")
    del description["ram_bytes"]
    with pytest.raises(ShapeViolation, match=r"A device needs exactly one tfo:ramBytes"):
        kg.add(device_to_rdf(description), replace=[device_iri("pico-0001")])
    assert _snapshot(kg) == before


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.ttl", "@prefix ex: <urn:x#> .\nex:a ex:b ", "malformed turtle"),
        (
            "bad.jsonld",
            '{"@context": {"ex": "urn:x#"}, "@id": "ex:a", "ex:b": ',
            "malformed json-ld",
        ),
        ("bad.json", '{"device_id": "x", "ram_bytes": "256KB"}', "'ram_bytes' must be an integer"),
        ("bad.json", '["not", "an", "object"]', "JSON is none of"),
        ("bad.csv", "a,b\n", "unknown file type"),
    ],
)
def test_malformed_files_are_clear_errors(
    kg: KnowledgeGraph, tmp_path: Path, name: str, text: str, fragment: str
) -> None:
    before = _snapshot(kg)
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DescriptionError, match=fragment):
        load_description(path)
    assert _snapshot(kg) == before


def test_jsonld_with_inline_context_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonld"
    path.write_text('{"@context": {"ex": "urn:x#"}, "@id": "ex:a", "ex:b": "c"}')
    assert len(load_description(path).graph) == 1


def test_republished_description_replaces_the_old_one(kg: KnowledgeGraph) -> None:
    description = _example("device-nano33-0001.json")
    description["ram_bytes"] = 131072
    description["sensors"] = ["camera"]
    kg.add(device_to_rdf(description), replace=[device_iri("nano33-0001")])
    _names, rows = kg.select(
        'SELECT ?ram ?m WHERE { ?d schema:identifier "nano33-0001" ; tfo:ramBytes ?ram ;'
        " tfo:hasSensor/sosa:observes ?m }"
    )
    assert [(r.toPython(), str(m)) for r, m in rows] == [
        (131072, "https://w3id.org/tinyfleet/ontology#camera")
    ]


def test_update_is_validated_and_refused_atomically(kg: KnowledgeGraph) -> None:
    before = _snapshot(kg)
    with pytest.raises(ShapeViolation, match="A device needs exactly one tfo:ramBytes"):
        kg.update(
            'DELETE { ?d tfo:ramBytes ?r } WHERE { ?d schema:identifier "pico-0001" ; tfo:ramBytes ?r }'
        )
    assert _snapshot(kg) == before
    with pytest.raises(ShapeViolation, match="positive integer"):
        kg.update(
            'DELETE { ?d tfo:ramBytes ?r } INSERT { ?d tfo:ramBytes "lots" }'
            ' WHERE { ?d schema:identifier "pico-0001" ; tfo:ramBytes ?r }'
        )
    assert _snapshot(kg) == before


def test_valid_update_changes_matchmaking(kg: KnowledgeGraph) -> None:
    assert "nucleo-f446re-0001" not in kg.eligible("presence-head@1").devices
    added, removed = kg.update(
        "INSERT { ?d tfo:hasSensor <https://w3id.org/tinyfleet/id/device/nucleo-f446re-0001/sensor/co2> ."
        " <https://w3id.org/tinyfleet/id/device/nucleo-f446re-0001/sensor/co2> a sosa:Sensor ; sosa:observes tfo:co2 }"
        ' WHERE { ?d schema:identifier "nucleo-f446re-0001" }'
    )
    # 3 sensor triples, plus the device moving to its new capability profile (derived)
    assert added > 3 and removed == 1
    assert "nucleo-f446re-0001" in kg.eligible("presence-head@1").devices


def test_update_syntax_error_and_load_are_refused(kg: KnowledgeGraph) -> None:
    before = _snapshot(kg)
    with pytest.raises(QuerySyntaxError, match="SPARQL update syntax error"):
        kg.update("INSERT DATA { <urn:a> <urn:b> }")
    with pytest.raises(KnowledgeGraphError, match="LOAD is not allowed"):
        kg.update("LOAD <http://example.org/x.ttl>")
    assert _snapshot(kg) == before


def test_round_record_errors() -> None:
    with pytest.raises(DescriptionError, match="is missing 'strategy'"):
        round_to_rdf({"round": 1, "device_id": "x", "started": 0, "ended": 1})
    with pytest.raises(DescriptionError, match="not an ISO-8601 timestamp"):
        round_to_rdf({"round": 1, "strategy": "s", "device_id": "x", "started": "noon", "ended": 1})


def test_round_record_enters_the_graph(kg: KnowledgeGraph) -> None:
    record = {
        "round": 7,
        "strategy": "tinyreptile",
        "device_id": ["nano33-0001", "pico-0001"],
        "model_version_in": "7",
        "model_version_out": "8",
        "metrics": {"loss": 0.25},
        "bytes_up": 1,
        "bytes_down": 2,
        "started": 1_780_000_000.0,
        "ended": 1_780_000_001.5,
        "task_id": "run-x",
    }
    kg.add(round_to_rdf(record))
    query = get_named_query("round-participants").bind({"round": "7", "task": "run-x"})
    _names, rows = kg.select(query)
    assert [tuple(str(t) for t in row) for row in rows] == [
        ("nano33-0001", "tinyreptile", "7", "8", "1", "2"),
        ("pico-0001", "tinyreptile", "7", "8", "1", "2"),
    ]


def test_persistent_store_survives_reopen(tmp_path: Path) -> None:
    store = tmp_path / "kg"
    with KnowledgeGraph.open(store) as kg:
        d = load_description(EXAMPLES_DIR / "device-pico-0001.json")
        kg.add(d.graph, replace=d.replace)
        count = len(kg)
    with KnowledgeGraph.open(store) as kg:
        assert len(kg) == count
        assert kg.select('SELECT ?d WHERE { ?d schema:identifier "pico-0001" }')[1]
