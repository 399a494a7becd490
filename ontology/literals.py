"""One spelling for plain literals: ``"x"`` rather than ``"x"^^xsd:string``.

RDF 1.1 makes the two the same term, and Oxigraph stores them so; rdflib keeps them apart
(``Literal("x") != Literal("x", datatype=XSD.string)``), so the shapes' ``sh:in`` lists
and plain rdflib queries over an export would not match what the store returns. Every
triple read out of a store passes through :func:`plain_triple`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rdflib import Literal
from rdflib.namespace import XSD

Triple = tuple[Any, Any, Any]


def plain(term: Any) -> Any:
    """``term`` with an ``xsd:string`` datatype dropped (other terms unchanged)."""
    if isinstance(term, Literal) and term.datatype == XSD.string and term.language is None:
        return Literal(str(term))
    return term


def plain_triple(triple: Triple) -> Triple:
    """A triple whose object is :func:`plain` (only objects can be literals)."""
    subject, predicate, obj = triple
    return subject, predicate, plain(obj)


@lru_cache(maxsize=8192, typed=True)
def shared_literal(value: str | int) -> Literal:
    """``Literal(value)`` made once, for the facts many descriptions repeat (firmware,
    capability profile and operator nodes): one term object, matched by identity."""
    return Literal(value)
