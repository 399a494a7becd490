"""Exports round-trip: `kg export` -> `kg validate` -> `--load`, and plain rdflib agrees."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import Graph

from tinyfleet.cli import main
from tinyfleet.ontology.loaders import load_description
from tinyfleet.ontology.named_queries import get_named_query
from tinyfleet.ontology.resources import EXAMPLES_DIR
from tinyfleet.ontology.results import plain
from tinyfleet.ontology.store import KnowledgeGraph, with_prologue
from tinyfleet.ontology.validation import violations

QUERIES = [
    ("model-inventory", {}),
    ("device-inventory", {}),
    ("model-devices", {"model": "digits-backbone@1"}),
    ("device-models", {"device": "nano33-0002"}),
    ("model-version-per-device", {}),
    ("round-participants", {"round": "1", "task": "digits-tinyreptile-demo"}),
    ("round-history", {"task": "sine-demo"}),
]
MODEL = "<https://w3id.org/tinyfleet/id/model/digits-backbone/1>"


@pytest.fixture
def store(tmp_path: Path) -> KnowledgeGraph:
    kg = KnowledgeGraph.open(tmp_path / "kg")
    for path in sorted(EXAMPLES_DIR.iterdir()):
        description = load_description(path)
        kg.add(description.graph, replace=description.replace)
    return kg


def _rows(result: object) -> list[tuple[str, ...]]:
    return [tuple(plain(t) for t in row) for row in result]  # type: ignore[attr-defined]


def test_export_validates_reloads_and_plain_rdflib_gives_the_same_rows(
    store: KnowledgeGraph, tmp_path: Path
) -> None:
    exported = Graph().parse(data=store.export("nt"), format="nt")
    assert len(exported) == len(store)
    assert violations(exported) == []
    again = KnowledgeGraph.memory()
    again.add(exported)  # validated write path
    assert len(again) == len(store)
    for name, params in QUERIES:
        text = get_named_query(name).bind(params)
        expected = _rows(store.select(text)[1])
        assert expected, name  # the examples exercise every query
        assert _rows(exported.query(with_prologue(text))) == expected, name
        assert _rows(again.select(text)[1]) == expected, name


def test_cli_export_then_validate_then_load(
    store: KnowledgeGraph, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.close()
    out = tmp_path / "export.ttl"
    assert main(["kg", "export", "--store", str(tmp_path / "kg"), "-o", str(out)]) == 0
    assert main(["kg", "validate", str(out)]) == 0
    assert ": ok (rdf," in capsys.readouterr().out
    query = "SELECT ?k WHERE { ?m tfo:modelKind ?k } ORDER BY ?k"
    assert main(["kg", "query", query, "--load", str(out), "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == [
        "k",
        "float-head",
        "float-head",
        "int8-backbone+float-head",
        "int8-backbone+float-head",
    ]


def test_valid_updates_touching_models_and_tensors_are_applied(store: KnowledgeGraph) -> None:
    added, removed = store.update(f'INSERT DATA {{ {MODEL} schema:description "digits v1" }}')
    assert (added, removed) == (1, 0)
    added, removed = store.update(
        f'DELETE {{ ?t tfo:dtype ?d }} INSERT {{ ?t tfo:dtype ?d ; rdfs:comment "checked" }}'
        f" WHERE {{ {MODEL} ssn:hasInput ?t . ?t tfo:dtype ?d }}"
    )
    assert added == 1
    _names, rows = store.select(
        f"SELECT ?desc ?c WHERE {{ {MODEL} schema:description ?desc ; ssn:hasInput/rdfs:comment ?c }}"
    )
    assert _rows(rows) == [("digits v1", "checked")]
