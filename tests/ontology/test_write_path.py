"""The validated write path writes exactly the union of a batch's descriptions.

The batch is indexed once (``compiled_shapes.union_index``) for the SHACL check and the
write; these tests pin that the triples written are the union of the description graphs
(each once), whatever the graphs share or contradict, and that the shared term objects
the extractors use change no term's value.
"""

from __future__ import annotations

import random

import pytest
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import Namespace
from test_compiled_shapes import _batch, _union

from tinyfleet.ontology.compiled_shapes import holds, index_triples, union_index
from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.fleetgen import generate_devices
from tinyfleet.ontology.literals import shared_literal
from tinyfleet.ontology.namespaces import ID, TFO, TermSpace, device_iri, shared_term
from tinyfleet.ontology.remote_store import ntriples
from tinyfleet.ontology.store import KnowledgeGraph


class OtherGraph(Graph):
    """Not a plain in-memory Graph: indexed by iterating its triples."""


def _copied(graph: Graph, kind: type[Graph] = Graph) -> Graph:
    """The same triples with fresh term objects: equal, not identical."""
    fresh = kind()
    for triple in graph:
        fresh.add(tuple(map(_fresh, triple)))  # type: ignore[arg-type]
    return fresh


def _fresh(term: object) -> object:
    if isinstance(term, Literal):
        return Literal(str(term), lang=term.language, datatype=term.datatype)
    return type(term)(str(term))


@pytest.mark.parametrize("seed", range(40))
def test_the_union_index_holds_each_triple_of_the_batch_once(seed: int) -> None:
    rng = random.Random(seed)
    graphs = _batch(rng, seed, broken=rng.randint(0, 4))  # broken: shared nodes disagree
    if seed % 2:  # terms equal but not shared, and graphs that are not plain Graphs
        graphs = [_copied(g, OtherGraph if i % 3 == 0 else Graph) for i, g in enumerate(graphs)]
    union = union_index(graphs)
    written = index_triples(union)
    assert len(written) == len(set(written))
    assert set(written) == set(_union(graphs))
    assert all(holds(union, t) for graph in graphs for t in graph)
    assert not holds(union, (ID.nothing, RDF.type, TFO.Device))


def test_add_all_writes_the_union_and_removes_only_what_it_does_not_restate() -> None:
    kg = KnowledgeGraph.memory()
    old = [device_to_rdf(d) for d in generate_devices(6, seed=3)]
    kg.add_all((g, ()) for g in old)
    again = generate_devices(3, seed=3)
    again[0]["ram_bytes"] = 4096  # a replaced description that changes a fact
    new = [{**d, "device_id": f"new-{i}"} for i, d in enumerate(generate_devices(4, seed=5))]
    batch = [device_to_rdf(d) for d in again + new]
    roots = [(device_iri(d["device_id"]),) for d in again] + [()] * len(new)
    seen: list[tuple[list, list]] = []
    apply = kg._apply

    def spy(removed: list, added: list) -> None:
        seen.append((list(removed), list(added)))
        apply(removed, added)

    kg._apply = spy  # type: ignore[method-assign]
    written = kg.add_all(zip(batch, roots, strict=True))
    ((removed, added),) = seen
    assert written == len(added) == len(set(added))
    assert set(added) == set(_union(batch))
    owned = {
        t
        for g, (root,) in zip(old[:3], roots[:3], strict=True)
        for t in g
        if t[0] == root or str(t[0]).startswith(f"{root}/")
    }
    assert set(removed) == owned - set(added)
    assert {p for _s, p, _o in removed} == {TFO.ramBytes, TFO.hasCapabilityProfile}


def test_ntriples_writes_equal_terms_alike_whether_shared_or_not() -> None:
    graphs = [device_to_rdf(d) for d in generate_devices(5, seed=7)]
    triples = index_triples(union_index(graphs))
    copies = index_triples(union_index([_copied(g) for g in graphs]))
    naive = {f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in triples}
    assert set(ntriples(triples).split("\n")) == naive
    assert set(ntriples(copies).split("\n")) == naive
    assert set(ntriples(iter(copies)).split("\n")) == naive


def test_the_vocabulary_and_shared_nodes_are_made_once_with_their_usual_values() -> None:
    assert isinstance(TFO, Namespace) and isinstance(TFO, TermSpace)
    assert TFO.Device is TFO.Device and TFO.Device == URIRef(f"{TFO}Device")
    assert TFO["in"] == URIRef(f"{TFO}in") and TFO.title == URIRef(f"{TFO}title")
    first, second = (device_to_rdf(d) for d in generate_devices(2, seed=11))
    (fw1,) = first.objects(None, TFO.hasFirmware)
    (fw2,) = second.objects(None, TFO.hasFirmware)
    if fw1 == fw2:
        assert fw1 is fw2
    assert shared_literal(1) == Literal(1) and shared_literal(True) == Literal(True)
    assert shared_literal(1).datatype != shared_literal(True).datatype
    assert shared_literal("1") == Literal("1") != Literal(1)


@pytest.mark.parametrize(
    "text",
    [
        f"{TFO}ramBytes",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
        "http://www.w3.org/2001/XMLSchema#integer",
        f"{TFO}index",  # a str method's name: not looked up
        f"{TFO}a/b",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#notInRdf",
        "https://example.org/other#x",
    ],
)
def test_shared_term_returns_an_equal_term(text: str) -> None:
    term = URIRef(text)
    found = shared_term(term)
    assert found == term and type(found) is URIRef
    assert shared_term(Literal(text)) == Literal(text)
    if text.endswith(("ramBytes", "#type")):
        assert found is (TFO.ramBytes if text.endswith("ramBytes") else RDF.type)
