"""SHACL validation of data before it enters the knowledge graph (pyshacl)."""

from __future__ import annotations

from dataclasses import dataclass

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

    The core ontology is added to (a copy of) the data so that ``sh:class`` sees the
    modality individuals and the class hierarchy; no other inference is done.
    """
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
