"""The SHACL shapes compiled into plain Python checks: pyshacl's verdicts, fast.

pyshacl evaluates every constraint through generic machinery (a few hundred triples per
second at fleet scale); tinyfleet's shapes use a small part of SHACL Core, which this
module reads from the shapes graph and checks over dictionaries:

* targets: ``sh:targetClass`` (instances of the class or a subclass) and
  ``sh:targetObjectsOf``;
* property shapes with a predicate path and an ``sh:message``, and the components
  ``sh:datatype``, ``sh:minCount``, ``sh:maxCount``, ``sh:minInclusive``,
  ``sh:minExclusive``, ``sh:maxInclusive``, ``sh:maxExclusive``, ``sh:pattern`` (with
  ``sh:flags``), ``sh:in``, ``sh:class``, ``sh:nodeKind`` and ``sh:lessThanOrEquals``.

Value checks reuse pyshacl's own comparison and datatype functions, so a literal passes
here exactly when it passes there. Shapes using anything else raise :class:`Unsupported`
at compile time (and :func:`violations` then falls back to pyshacl), as does data this
module cannot judge with certainty (blank nodes in comparisons, incomparable values).
``tests/ontology/test_compiled_shapes.py`` checks random valid and invalid batches
against pyshacl, result for result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rdflib import RDF, RDFS, BNode, Graph, Literal, Namespace, URIRef

SH = Namespace("http://www.w3.org/ns/shacl#")
Index = dict[Any, dict[Any, set[Any]]]

#: predicates a property shape may carry (anything else: Unsupported)
_PROPERTY_KEYS = {
    SH.path, SH.message, SH.datatype, SH.minCount, SH.maxCount, SH.minInclusive,
    SH.minExclusive, SH.maxInclusive, SH.maxExclusive, SH.pattern, SH.flags, SH["in"],
    SH["class"], SH.nodeKind, SH.lessThanOrEquals, SH.name, SH.description, RDFS.comment,
}  # fmt: skip
_NODE_KEYS = {RDF.type, SH.targetClass, SH.targetObjectsOf, SH.property, RDFS.comment}
#: a node shape's sh:or: alternatives of count-only property shapes, reported with its message
_OR_KEYS = {SH["or"], SH.message}


class Unsupported(Exception):
    """The shapes or the data need more of SHACL than this module implements."""


@dataclass
class PropertyCheck:
    """One property shape: its path, message and the constraints on the value nodes."""

    path: URIRef
    message: str
    min_count: int = 0
    max_count: int | None = None
    datatype: URIRef | None = None
    bounds: list[tuple[str, Literal]] = field(default_factory=list)  # (">", 0) ...
    pattern: re.Pattern[str] | None = None
    allowed: frozenset[Any] | None = None
    cls: URIRef | None = None
    node_kind: URIRef | None = None
    less_or_equal: URIRef | None = None

    def value_ok(self, value: Any, is_instance: Any) -> bool:
        """Whether one value node meets the value-level constraints."""
        from pyshacl.constraints.core.value_constraints import DatatypeConstraintComponent

        if self.datatype is not None:
            if not isinstance(value, Literal):
                return False
            if value.datatype == self.datatype:
                if getattr(value, "ill_typed", None) is True:
                    return False
            elif not (
                value.datatype is None and value.language is None and self.datatype == _XSD_STRING
            ):
                return False
            # pyshacl's own check of the Python value's type (unbound: it uses no state)
            if not DatatypeConstraintComponent._assert_actual_datatype(None, value, self.datatype):  # type: ignore[arg-type]
                return False
        if self.allowed is not None and value not in self.allowed:
            return False
        if self.node_kind is not None and not _node_kind_ok(value, self.node_kind):
            return False
        if self.pattern is not None and not _pattern_ok(value, self.pattern):
            return False
        for op, bound in self.bounds:
            if not _bound_ok(value, op, bound):
                return False
        if self.cls is not None:
            return not isinstance(value, Literal) and is_instance(value, self.cls)
        return True


_XSD_STRING = URIRef("http://www.w3.org/2001/XMLSchema#string")


_KINDS = {
    URIRef: (SH.IRI, SH.IRIOrLiteral, SH.BlankNodeOrIRI),
    BNode: (SH.BlankNode, SH.BlankNodeOrIRI, SH.BlankNodeOrLiteral),
    Literal: (SH.Literal, SH.BlankNodeOrLiteral, SH.IRIOrLiteral),
}


def _node_kind_ok(value: Any, kind: URIRef) -> bool:
    return any(isinstance(value, t) and kind in ok for t, ok in _KINDS.items())


def _pattern_ok(value: Any, pattern: re.Pattern[str]) -> bool:
    from pyshacl.constraints.core.string_based_constraints import StringBasedConstraintBase

    if isinstance(value, BNode):
        return False
    text = StringBasedConstraintBase.value_node_to_string(value)
    return bool(pattern.match(text) or pattern.search(text))


def _bound_ok(value: Any, op: str, bound: Literal) -> bool:
    """sh:min/maxIn/Exclusive as pyshacl decides them (its compare_literal)."""
    from pyshacl.rdfutil.compare import compare_literal

    if not isinstance(value, Literal):
        return False  # IRIs and blank nodes never pass a range check in pyshacl
    if isinstance(value.value, str) != isinstance(bound.value, str):
        return False
    try:
        cmp = compare_literal(value, bound)
    except (TypeError, NotImplementedError):
        return False
    return {">": cmp > 0, ">=": cmp >= 0, "<": cmp < 0, "<=": cmp <= 0}[op]


@dataclass
class NodeCheck:
    """One node shape: its targets and property shapes."""

    classes: list[URIRef]
    objects_of: list[URIRef]
    properties: list[PropertyCheck]
    #: sh:or: alternatives, each [(path, min, max)]; one must hold, else ``or_message``
    alternatives: list[list[tuple[URIRef, int, int | None]]] = field(default_factory=list)
    or_message: str = ""


def compile_shapes(shapes: Graph) -> list[NodeCheck]:
    """Read ``shapes`` into checks; raise :class:`Unsupported` for anything not covered."""
    checks = []
    node_shapes = set(shapes.subjects(RDF.type, SH.NodeShape))
    for node in shapes.subjects(SH.property, None):
        node_shapes.add(node)
    members = {m for listed in shapes.objects(None, SH["or"]) for m in shapes.items(listed)}
    for node in sorted(node_shapes - members, key=str):
        keys = set(shapes.predicates(node, None))
        extra = keys - _NODE_KEYS - (_OR_KEYS if SH["or"] in keys else set())
        if extra or set(shapes.objects(node, RDF.type)) - {SH.NodeShape}:
            raise Unsupported(f"node shape {node}: {sorted(map(str, extra))}")
        properties = [_compile_property(shapes, p) for p in shapes.objects(node, SH.property)]
        check = NodeCheck(
            [c for c in shapes.objects(node, SH.targetClass) if isinstance(c, URIRef)],
            [p for p in shapes.objects(node, SH.targetObjectsOf) if isinstance(p, URIRef)],
            properties,
        )
        listed = list(shapes.objects(node, SH["or"]))
        if listed:
            message = list(shapes.objects(node, SH.message))
            if len(listed) > 1 or len(message) != 1:
                raise Unsupported(f"node shape {node}: one sh:or and one sh:message")
            check.alternatives = [_count_only(shapes, m) for m in shapes.items(listed[0])]
            check.or_message = str(message[0])
        checks.append(check)
    if set(shapes.subjects(SH.path, None)) - set(shapes.objects(None, SH.property)):
        raise Unsupported("property shapes outside a node shape")
    return checks


def _count_only(shapes: Graph, alternative: Any) -> list[tuple[URIRef, int, int | None]]:
    """An sh:or member made only of property shapes with a predicate path and counts."""
    if set(shapes.predicates(alternative, None)) - {SH.property}:
        raise Unsupported("sh:or members other than count-only property shapes")
    found = []
    for prop in shapes.objects(alternative, SH.property):
        path = shapes.value(prop, SH.path)
        keys = set(shapes.predicates(prop, None))
        if keys - {SH.path, SH.minCount, SH.maxCount} or not isinstance(path, URIRef):
            raise Unsupported("sh:or members other than count-only property shapes")
        low, high = shapes.value(prop, SH.minCount), shapes.value(prop, SH.maxCount)
        found.append((path, int(str(low or 0)), None if high is None else int(str(high))))
    return found


def _compile_property(shapes: Graph, node: Any) -> PropertyCheck:
    keys = set(shapes.predicates(node, None))
    if keys - _PROPERTY_KEYS:
        raise Unsupported(f"property shape: {sorted(map(str, keys - _PROPERTY_KEYS))}")

    def one(predicate: URIRef) -> Any:
        values = list(shapes.objects(node, predicate))
        if len(values) > 1:
            raise Unsupported(f"several {predicate} on one property shape")
        return values[0] if values else None

    path, message = one(SH.path), one(SH.message)
    if not isinstance(path, URIRef) or message is None:
        raise Unsupported("only predicate paths with an sh:message are compiled")
    check = PropertyCheck(path, str(message))
    for predicate, attr in ((SH.minCount, "min_count"), (SH.maxCount, "max_count")):
        value = one(predicate)
        if value is not None:
            setattr(check, attr, int(value.toPython()))
    for predicate, op in (
        (SH.minExclusive, ">"), (SH.minInclusive, ">="),
        (SH.maxExclusive, "<"), (SH.maxInclusive, "<="),
    ):  # fmt: skip
        bound = one(predicate)
        if bound is not None:
            if not isinstance(bound, Literal):
                raise Unsupported("range bounds must be literals")
            check.bounds.append((op, bound))
    check.datatype, check.cls, check.node_kind = (
        one(SH.datatype),
        one(SH["class"]),
        one(SH.nodeKind),
    )
    check.less_or_equal = one(SH.lessThanOrEquals)
    pattern = one(SH.pattern)
    if pattern is not None:
        flags = str(one(SH.flags) or "").lower()
        bits = (re.I if "i" in flags else 0) | (re.M if "m" in flags else 0)
        if set(flags) - set("im"):
            raise Unsupported(f"sh:flags {flags!r}")
        check.pattern = re.compile(str(pattern), bits)
    listed = one(SH["in"])
    if listed is not None:
        check.allowed = frozenset(shapes.items(listed))
    return check


@lru_cache(maxsize=1)
def compiled() -> list[NodeCheck]:
    """The packaged shapes, compiled (raises :class:`Unsupported` if they outgrow this)."""
    from tinyfleet.ontology.resources import shapes_graph

    return compile_shapes(shapes_graph())


def index(triples: Iterable[tuple[Any, Any, Any]]) -> Index:
    """subject -> predicate -> set of objects (:func:`union_index` for graphs)."""
    found: Index = {}
    for s, p, o in triples:
        found.setdefault(s, {}).setdefault(p, set()).add(o)
    return found


def union_index(graphs: Iterable[Graph]) -> Index:
    """The union of ``graphs``, each distinct triple once: what a batch is checked on
    and writes. A subject's first description is copied from rdflib's own index (C-level
    set copies); only shared subjects (firmware, profile, operator nodes) are merged."""
    data: Index = {}
    for graph in graphs:
        spo: Any = _memory_index(graph)
        if spo is None:
            spo = index(graph)
        for s, predicates in spo.items():
            mine = data.get(s)
            if mine is None:
                data[s] = {p: set(objects) for p, objects in predicates.items() if objects}
                continue
            for p, objects in predicates.items():
                if objects:
                    held = mine.get(p)
                    if held is None:
                        mine[p] = set(objects)
                    else:
                        held.update(objects)
    return data


def index_triples(data: Index) -> list[tuple[Any, Any, Any]]:
    """The triples of an :data:`Index`, each once."""
    return [(s, p, o) for s, ps in data.items() for p, os in ps.items() for o in os]


def holds(data: Index, triple: tuple[Any, Any, Any]) -> bool:
    """Whether ``triple`` is in the :data:`Index` (no tuple hashing)."""
    s, p, o = triple
    return o in data.get(s, {}).get(p, ())


def _memory_index(graph: Any) -> dict[Any, dict[Any, dict[Any, int]]] | None:
    """rdflib's subject/predicate/object index of a plain in-memory ``Graph`` (whose
    content is exactly that index), else None."""
    from rdflib.plugins.stores.memory import Memory

    if type(graph) is not Graph or type(graph.store) is not Memory:
        return None
    if len(getattr(graph.store, "_Memory__all_contexts", ())) > 1:
        return None  # a store shared by several graphs: its index holds them all
    spo = getattr(graph.store, "_Memory__spo", None)
    return spo if isinstance(spo, dict) else None


class Checker:
    """Validate graphs against compiled shapes, with the core ontology as background
    (what :func:`validation.violations` adds to the data for pyshacl)."""

    def __init__(self, checks: list[NodeCheck], background: Graph) -> None:
        self.checks = checks
        self.background = union_index([background])

    def violations(self, graphs: Iterable[Graph]) -> list[tuple[str, str | None, str]]:
        """(focus, path, message) of every violation in the union of ``graphs`` and the
        background, sorted: what pyshacl reports on that union (one per focus node and
        property shape)."""
        return self.violations_in(union_index(graphs))

    def violations_in(self, data: Index) -> list[tuple[str, str | None, str]]:
        """:meth:`violations` of data already indexed (by :func:`union_index`)."""
        union = _Union(self.background, data)
        found: set[tuple[str, str | None, str]] = set()
        memo: dict[tuple[int, int], bool] = {}
        for node_check in self.checks:
            for focus in union.targets(node_check):
                facts = union.facts(focus)
                for prop in node_check.properties:
                    if not self._conforms(union, facts, prop, memo):
                        found.add((str(focus), str(prop.path), prop.message))
                if node_check.alternatives and not any(
                    all(
                        low <= len(facts.get(path, ()))
                        and (high is None or len(facts.get(path, ())) <= high)
                        for path, low, high in alternative
                    )
                    for alternative in node_check.alternatives
                ):  # sh:or: pyshacl reports it on the focus node, no path, the shape's message
                    found.add((str(focus), None, node_check.or_message))
        return sorted(found, key=lambda v: (v[0], v[2]))

    def _conforms(self, union: _Union, facts: dict, prop: PropertyCheck, memo: dict) -> bool:
        values = facts.get(prop.path, ())
        if len(values) < prop.min_count:
            return False
        if prop.max_count is not None and len(values) > prop.max_count:
            return False
        number = id(prop)
        for value in values:  # a verdict holds for this union (sh:class: its types)
            key = (number, id(value))  # the union keeps the values alive
            verdict = memo.get(key)
            if verdict is None:
                verdict = memo[key] = prop.value_ok(value, union.is_instance)
            if not verdict:
                return False
        if prop.less_or_equal is not None:
            others = facts.get(prop.less_or_equal, ())
            for value in values:
                for other in others:
                    if not _less_or_equal(value, other):
                        return False
        return True


def _less_or_equal(value: Any, other: Any) -> bool:
    """sh:lessThanOrEquals for one pair, as pyshacl compares (strings with strings, else
    rdflib's ordering); pyshacl errors on blank nodes and incomparable values: so do we."""
    if isinstance(value, BNode) or isinstance(other, BNode):
        raise Unsupported("blank node in sh:lessThanOrEquals")
    left_text = isinstance(value, URIRef) or (
        isinstance(value, Literal) and isinstance(value.value, str)
    )
    right_text = isinstance(other, URIRef) or (
        isinstance(other, Literal) and isinstance(other.value, str)
    )
    if left_text != right_text:
        return False
    left = str(value) if isinstance(value, URIRef) else value.value if left_text else value
    right = str(other) if isinstance(other, URIRef) else other.value if right_text else other
    try:
        return bool(left <= right)
    except TypeError:
        raise Unsupported("incomparable values in sh:lessThanOrEquals") from None


_NONE: dict[Any, set[Any]] = {}  # read only
_TYPE, _SUBCLASS_OF = RDF.type, RDFS.subClassOf  # RDF.x runs Python on every access


class _Union:
    """Read-only view of background + data indexes."""

    def __init__(self, background: Index, data: Index) -> None:
        self.parts = (background, data)
        self._subclasses: dict[Any, set[Any]] = {}

    def objects(self, subject: Any, predicate: Any) -> set[Any]:
        first = self.parts[0].get(subject, _NONE).get(predicate)
        second = self.parts[1].get(subject, _NONE).get(predicate)
        if first and second:
            return first | second
        return first or second or set()

    def facts(self, subject: Any) -> dict[Any, set[Any]]:
        """predicate -> objects of ``subject`` over the union (read only)."""
        first, second = self.parts[0].get(subject), self.parts[1].get(subject)
        if first and second:
            return {p: self.objects(subject, p) for p in first.keys() | second.keys()}
        return first or second or _NONE

    def _supers(self, cls: Any) -> set[Any]:
        """cls and its superclasses (rdfs:subClassOf*), over the union."""
        if cls not in self._subclasses:
            seen, todo = {cls}, [cls]
            while todo:
                for parent in self.objects(todo.pop(), _SUBCLASS_OF):
                    if parent not in seen:
                        seen.add(parent)
                        todo.append(parent)
            self._subclasses[cls] = seen
        return self._subclasses[cls]

    def is_instance(self, node: Any, cls: Any) -> bool:
        return any(cls in self._supers(t) for t in self.objects(node, _TYPE))

    def targets(self, check: NodeCheck) -> set[Any]:
        found: set[Any] = set()
        if check.classes:
            for cls_type, subjects in self._typed().items():
                if any(cls in self._supers(cls_type) for cls in check.classes):
                    found |= subjects
        for part in self.parts:
            for predicate in check.objects_of:
                for predicates in part.values():
                    found.update(predicates.get(predicate, ()))
        return found

    def _typed(self) -> dict[Any, set[Any]]:
        """rdf:type value -> its subjects (built once per validation)."""
        if not hasattr(self, "_by_type"):
            self._by_type: dict[Any, set[Any]] = {}
            for part in self.parts:
                for subject, predicates in part.items():
                    for cls_type in predicates.get(_TYPE, ()):
                        self._by_type.setdefault(cls_type, set()).add(subject)
        return self._by_type
