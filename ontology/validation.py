"""SHACL validation of data before it enters the knowledge graph (pyshacl)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rdflib import Graph, Namespace
from rdflib.term import Node

from tinyfleet.ontology.errors import ShapeViolation
from tinyfleet.ontology.resources import ontology_graph, shapes_graph

SH = Namespace("http://www.w3.org/ns/shacl#")


@dataclass(frozen=True)
class Violation:
    """One SHACL result: the focus node, the path (if any) and the shape's sh:message."""

    focus: str
    path: str | None
    message: str

    def __str__(self) -> str:
        return f"<{self.focus}>: {self.message}"


def violations(data: Graph) -> list[Violation]:
    """Validate ``data`` against the tinyfleet shapes; return the violations (empty = conforms).

    The core ontology is added to the data so that ``sh:class`` sees the modality
    individuals and the class hierarchy; no other inference is done.
    """
    return violations_of([data])


def violations_of(graphs: Iterable[Graph]) -> list[Violation]:
    """The violations of the union of ``graphs`` (a batch validated as one unit).

    Checked by the compiled shapes (:mod:`compiled_shapes`), which report what pyshacl
    reports on the same data; pyshacl itself runs when the shapes or the data need more
    than the compiled checks cover.
    """
    from tinyfleet.ontology.compiled_shapes import union_index

    return violations_in(union_index(graphs))


def violations_in(data: dict[Any, dict[Any, set[Any]]]) -> list[Violation]:
    """:func:`violations_of` the union already indexed by
    :func:`compiled_shapes.union_index` (which the write path also writes from)."""
    from tinyfleet.ontology.compiled_shapes import Unsupported, index_triples

    try:
        found = _checker().violations_in(data)
    except Unsupported:
        union = Graph()
        for triple in index_triples(data):
            union.add(triple)
        return pyshacl_violations(union)
    return [Violation(focus, path, message) for focus, path, message in found]


@lru_cache(maxsize=1)
def _checker() -> Any:
    """The compiled shapes over the core ontology, their terms replaced by the
    vocabulary's own objects (:func:`namespaces.shared_term`): the extractors' data uses
    those, so the checks' lookups match by identity."""
    from dataclasses import replace

    from tinyfleet.ontology.compiled_shapes import Checker, compiled
    from tinyfleet.ontology.namespaces import shared_term as t

    checks = [
        replace(
            c,
            classes=[t(x) for x in c.classes],
            objects_of=[t(x) for x in c.objects_of],
            properties=[
                replace(p, path=t(p.path), cls=t(p.cls), less_or_equal=t(p.less_or_equal))
                for p in c.properties
            ],
            alternatives=[[(t(path), low, high) for path, low, high in a] for a in c.alternatives],
        )
        for c in compiled()
    ]
    background = Graph()
    for triple in ontology_graph():
        background.add(tuple(map(t, triple)))  # type: ignore[arg-type]
    return Checker(checks, background)


def pyshacl_violations(data: Graph) -> list[Violation]:
    """:func:`violations` computed by pyshacl (the reference the compiled checks match)."""
    from pyshacl import validate  # heavy import: only when something is written

    union = Graph()
    for triple in ontology_graph():
        union.add(triple)
    for triple in data:
        union.add(triple)
    conforms, report, _text = validate(
        union,
        shacl_graph=shapes_graph(),
        inference="none",
        abort_on_first=False,
        allow_infos=True,
        allow_warnings=True,
    )
    if conforms:
        return []
    assert isinstance(report, Graph)
    found = set()
    for result in report.subjects(SH.resultSeverity, SH.Violation):
        focus = report.value(result, SH.focusNode)
        path = report.value(result, SH.resultPath)
        message = report.value(result, SH.resultMessage)
        found.add(Violation(_text_of(focus), _text_of(path) if path else None, str(message)))
    return sorted(found, key=lambda v: (v.focus, v.message))


def _text_of(node: Node | None) -> str:
    return "" if node is None else str(node)


def check(data: Graph) -> None:
    """Raise :class:`ShapeViolation` with the shapes' messages unless ``data`` conforms."""
    found = violations(data)
    if found:
        raise ShapeViolation([str(v) for v in found])
