"""A write-recording overlay over a graph, to evaluate a SPARQL UPDATE without applying it.

rdflib's own update evaluator runs against ``Graph(store=OverlayStore(base))``: reads see
the base graph plus the changes so far (so operations of one request see each other in
lexical order), writes are only recorded. The knowledge graph then validates the
recorded change and applies it, or refuses it and the base graph stays untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rdflib import Graph
from rdflib.store import Store

from tinyfleet.ontology.literals import plain_triple

Triple = tuple[Any, Any, Any]


def _matches(triple: Triple, pattern: Triple) -> bool:
    return all(p is None or p == t for t, p in zip(triple, pattern, strict=True))


class OverlayStore(Store):
    """Reads from ``base``; records ``added`` and ``removed`` triples instead of writing."""

    context_aware = False
    formula_aware = False
    graph_aware = False
    transaction_aware = False

    def __init__(self, base: Graph) -> None:
        super().__init__()
        self.base = base
        self.added: set[Triple] = set()
        self.removed: set[Triple] = set()

    def triples(  # type: ignore[override]
        self, triple_pattern: Triple, context: Any = None
    ) -> Iterator[tuple[Triple, Iterator[Any]]]:
        for triple in map(plain_triple, self.base.triples(triple_pattern)):
            if triple not in self.removed:
                yield triple, iter(())
        for triple in list(self.added):
            if _matches(triple, triple_pattern):
                yield triple, iter(())

    def add(self, triple: Triple, context: Any = None, quoted: bool = False) -> None:  # type: ignore[override]
        if triple in self.removed:
            self.removed.discard(triple)
        elif triple not in self.base:
            self.added.add(triple)

    def remove(self, triple_pattern: Triple, context: Any = None) -> None:  # type: ignore[override]
        for triple, _ in list(self.triples(triple_pattern)):
            if triple in self.added:
                self.added.discard(triple)
            else:
                self.removed.add(triple)

    def __len__(self, context: Any = None) -> int:
        return sum(1 for _ in self.triples((None, None, None)))

    def contexts(self, triple: Any = None) -> Iterator[Any]:  # type: ignore[override]
        return iter(())
