"""The knowledge graph: an rdflib Graph whose every write is SHACL-validated first.

Backends
--------
* ``KnowledgeGraph.open(directory)``: persistent, embedded Oxigraph (via oxrdflib): the default.
* ``KnowledgeGraph.memory()``: in-memory Oxigraph; ``memory(backend="rdflib")``: rdflib's
  plain in-memory store (slow at scale; the benchmark compares the two).
* ``KnowledgeGraph.remote(base_url)``: any SPARQL 1.1 Protocol server (Oxigraph server,
  Fuseki, GraphDB, Virtuoso, ``tinyfleet kg serve``) through
  :class:`~tinyfleet.ontology.remote_store.SparqlProtocolStore`, so many processes share
  one graph; ``KnowledgeGraph.connect(dir_or_url)`` picks one of the two.

Writes
------
``add(data, replace=...)`` validates ``data`` (a self-contained description: a device, a
model, a round) against the shapes and only then writes it; ``replace`` names resources
whose old description (their triples and those of the nodes they own, i.e. objects whose
IRI extends theirs with ``/...``) is removed first, so a re-published device description
replaces the old one. ``update(sparql)`` evaluates a SPARQL UPDATE on a recording overlay,
validates the after-state of every node it touches, and applies it only if that conforms.
Refused writes raise :class:`~tinyfleet.ontology.errors.ShapeViolation` (the shapes'
``sh:message`` texts) and leave the graph unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdflib import BNode, Graph, URIRef
from rdflib.graph import DATASET_DEFAULT_GRAPH_ID
from rdflib.query import Result

from tinyfleet.ontology import validation
from tinyfleet.ontology.compiled_shapes import Index, holds, index_triples, union_index
from tinyfleet.ontology.derived import (
    derive_all_update,
    eligibility_updates,
    profile_recount_update,
    touched_profiles,
)
from tinyfleet.ontology.errors import KnowledgeGraphError, QuerySyntaxError, ShapeViolation
from tinyfleet.ontology.literals import plain_triple
from tinyfleet.ontology.namespaces import SPARQL_PROLOGUE, bind_prefixes
from tinyfleet.ontology.overlay import OverlayStore

if TYPE_CHECKING:
    from tinyfleet.ontology.matchmaking import Eligible

Triple = tuple[Any, Any, Any]


class KnowledgeGraph:
    """Models, devices, deployments and rounds of a fleet, as RDF."""

    def __init__(self, graph: Graph, backend: str) -> None:
        self.graph = bind_prefixes(graph)
        self.backend = backend

    # ------------------------------------------------------------------ construction
    @classmethod
    def memory(cls, backend: str = "oxigraph") -> KnowledgeGraph:
        """An empty in-memory graph (``backend`` "oxigraph" or "rdflib")."""
        if backend == "oxigraph":
            return cls(Graph(store="Oxigraph", identifier=DATASET_DEFAULT_GRAPH_ID), backend)
        if backend == "rdflib":
            return cls(Graph(), backend)
        raise KnowledgeGraphError(f"unknown backend {backend!r} (oxigraph or rdflib)")

    @classmethod
    def open(cls, directory: str | Path) -> KnowledgeGraph:
        """The persistent Oxigraph store in ``directory`` (created if missing)."""
        path = Path(directory)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            graph = Graph(store="Oxigraph", identifier=DATASET_DEFAULT_GRAPH_ID)
            graph.open(str(path), create=not path.exists())
        except (OSError, ValueError) as error:  # a locked store is an OSError
            raise KnowledgeGraphError(f"cannot open the store at {path}: {error}") from None
        return cls(graph, "oxigraph")

    @classmethod
    def remote(cls, base_url: str, token: str | None = None) -> KnowledgeGraph:
        """The default graph of a SPARQL 1.1 Protocol server (``{base_url}/query`` and
        ``/update``: Oxigraph server, Fuseki dataset, ``tinyfleet kg serve``).

        ``token`` (default ``$TINYFLEET_KG_TOKEN``) is sent as a bearer token with writes.
        """
        from tinyfleet.ontology.remote_store import SparqlProtocolStore

        store = SparqlProtocolStore(base_url, token)
        return cls(Graph(store=store, identifier=DATASET_DEFAULT_GRAPH_ID), "remote")

    @classmethod
    def connect(cls, store: str | Path) -> KnowledgeGraph:
        """``store`` names a server (``http://`` or ``https://`` URL) or a store directory."""
        text = str(store)
        if text.startswith(("http://", "https://")):
            return cls.remote(text)
        return cls.open(text)

    def close(self) -> None:
        """Flush and close the store."""
        self.graph.close()

    def __len__(self) -> int:
        return len(self.graph)

    def __enter__(self) -> KnowledgeGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads
    def query(self, sparql: str) -> Result:
        """Run a SPARQL query (the tinyfleet prefixes are predeclared).

        Syntax errors (from Oxigraph's or rdflib's parser) raise :class:`QuerySyntaxError`.
        """
        from pyparsing import ParseException

        text = with_prologue(sparql)
        try:
            return self.graph.query(text)
        except (SyntaxError, ParseException) as error:
            raise QuerySyntaxError(f"SPARQL syntax error: {_one_line(error)}") from None
        except Exception as error:  # engine errors (unknown function, remote failure ...)
            raise KnowledgeGraphError(f"query failed: {_one_line(error)}") from None

    def select(self, sparql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT: (variable names, rows of rdflib terms or None)."""
        result = self.query(sparql)
        if result.type != "SELECT":
            raise KnowledgeGraphError(f"expected a SELECT query, got {result.type}")
        names = [str(v) for v in result.vars or []]
        return names, [tuple(row) for row in result]  # type: ignore[arg-type]

    def select_values(self, sparql: str) -> list[list[str]]:
        """Run a SELECT: rows of plain values (IRI strings, lexical forms, "" if unbound).

        Cheaper than :meth:`select` on a remote store (CSV instead of typed terms): for
        internal queries that need no datatypes, like matchmaking's hot path.
        """
        from tinyfleet.ontology.remote_store import SparqlProtocolStore

        store = self.graph.store
        if isinstance(store, SparqlProtocolStore):
            try:
                return store.select_values(with_prologue(sparql))
            except SyntaxError as error:
                raise QuerySyntaxError(f"SPARQL syntax error: {_one_line(error)}") from None
        _names, rows = self.select(sparql)
        return [["" if term is None else str(term) for term in row] for row in rows]

    def eligible(self, model: str, limit: int | None = None, offset: int = 0) -> Eligible:
        """The devices that can run and train ``model`` (see :func:`matchmaking.eligible`).

        Parameters
        ----------
        model
            ``name@version``, or ``name`` for its highest version.
        limit, offset
            ``limit=None``: every eligible device id; else the sorted page
            ``offset .. offset + limit`` and the total count (cheap at fleet scale).
        """
        from tinyfleet.ontology.matchmaking import eligible

        return eligible(self, model, limit, offset)

    def triples(self, pattern: Triple) -> Iterator[Triple]:
        """The stored triples matching ``pattern`` (``None`` = any), plain literals plain."""
        return map(plain_triple, self.graph.triples(pattern))

    def owned_triples(self, roots: Iterable[URIRef]) -> Iterator[Triple]:
        """Triples of each root and of the nodes it owns (blank nodes, and objects whose IRI
        is ``root/...``), read level by level: one request per level on a remote store.
        """
        owner = {root: str(root) for root in roots}
        frontier = list(owner)
        while frontier:
            found = self._triples_of(frontier)
            frontier = []
            for triple in found:
                yield triple
                subject, _p, obj = triple
                root = owner[subject]
                owned = isinstance(obj, BNode) or (
                    isinstance(obj, URIRef) and str(obj).startswith(f"{root}/")
                )
                if owned and obj not in owner:
                    owner[obj] = root
                    frontier.append(obj)

    def _triples_of(self, subjects: list[Any]) -> list[Triple]:
        from tinyfleet.ontology.remote_store import SparqlProtocolStore

        store = self.graph.store
        if isinstance(store, SparqlProtocolStore):
            return list(map(plain_triple, store.triples_of(subjects)))
        return [t for subject in subjects for t in self.triples((subject, None, None))]

    # ------------------------------------------------------------------ writes
    def add(self, data: Graph, replace: Iterable[URIRef] = (), validate: bool = True) -> int:
        """Validate ``data`` and write it (after removing ``replace``'s old descriptions).

        Returns the number of triples in ``data``. ``validate=False`` is for bulk loads of
        data that was validated elsewhere (the benchmark, generated test fleets).
        """
        return self.add_all([(data, tuple(replace))], validate)

    def add_all(
        self, items: Iterable[tuple[Graph, Iterable[URIRef]]], validate: bool = True
    ) -> int:
        """Validate every ``(data, replace)`` item, then write all of them or none.

        The items are checked together, as the one state they write (two descriptions of
        one device in a batch are checked against each other); the violations are
        reported together; a remote store gets one update request.
        """
        new, roots = self._prepare(items, validate)
        added = index_triples(new)
        self._apply(self._stale(new, roots), added)
        return len(added)

    def add_batches(
        self,
        batches: Iterable[Iterable[tuple[Graph, Iterable[URIRef]]]],
        validate: bool = True,
    ) -> int:
        """:meth:`add_all` for each batch in turn: the validated bulk path.

        Each batch is validated as one unit and written, in order; on a remote store the
        next batch is validated while the server writes the previous one. A refused batch
        raises :class:`ShapeViolation` after the batches before it were written. Returns
        the number of triples written.
        """
        from concurrent.futures import Future, ThreadPoolExecutor

        from tinyfleet.ontology.remote_store import SparqlProtocolStore

        if not isinstance(self.graph.store, SparqlProtocolStore):
            return sum(self.add_all(batch, validate) for batch in batches)
        written = 0
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending: Future[None] | None = None
            for batch in batches:
                new, roots = self._prepare(batch, validate)  # while the server writes
                if pending is not None:
                    pending.result()  # in order: a batch may replace what the last one wrote
                added = index_triples(new)
                pending = writer.submit(self._apply, self._stale(new, roots), added)
                written += len(added)
            if pending is not None:
                pending.result()
        return written

    def _prepare(
        self, items: Iterable[tuple[Graph, Iterable[URIRef]]], validate: bool
    ) -> tuple[Index, list[URIRef]]:
        """Validate a batch (as one unit); return its triples (the union of its graphs,
        indexed once for the check and the write) and the roots it replaces."""
        listed = [(data, tuple(replace)) for data, replace in items]
        new = union_index(data for data, _r in listed)
        if validate:  # the batch as one unit: the state it writes must conform as a whole
            found = [str(v) for v in validation.violations_in(new)]
            if found:
                raise ShapeViolation(found)
        return new, [root for _data, replace in listed for root in replace]

    def _stale(self, new: Index, roots: list[URIRef]) -> list[Triple]:
        """The stored triples of ``roots`` (and what they own) that ``new`` does not
        state again: what the write removes."""
        return [t for t in set(self.owned_triples(roots)) if not holds(new, t)]

    def _apply(self, removed: Iterable[Triple], added: Iterable[Triple]) -> None:
        """Remove, then add, then bring the derived data the change touched in step (the
        capability profiles' device counts and the models' eligible profiles, see
        :mod:`derived`): one request (one transaction) on a remote store.
        """
        from tinyfleet.ontology.remote_store import SparqlProtocolStore

        removed, added = list(removed), list(added)
        derive = eligibility_updates(removed, added, self.select_values)
        recount = profile_recount_update(touched_profiles(removed, added))
        then = " ;\n".join([*derive, recount] if recount else derive)
        store = self.graph.store
        if isinstance(store, SparqlProtocolStore):
            store.apply(removed, added, then=then)
            return
        for triple in removed:
            self.graph.remove(triple)
        self.graph.addN((s, p, o, self.graph) for s, p, o in added)
        if then:
            self.graph.update(with_prologue(then))

    def recount_profiles(self) -> None:
        """Derive all derived data again: recount the devices of every capability profile
        and derive every model's eligible profiles (after writes that bypassed :meth:`add`,
        e.g. ``oxigraph load``; tinyfleet's own writes keep both in step)."""
        from tinyfleet.ontology.remote_store import SparqlProtocolStore

        text = with_prologue(f"{profile_recount_update(None)} ;\n{derive_all_update()}")
        store = self.graph.store
        if isinstance(store, SparqlProtocolStore):
            store.update_text(text)  # evaluated by the server (rdflib would do it here)
        else:
            self.graph.update(text)

    def update(self, sparql_update: str) -> tuple[int, int]:
        """Validate and apply a SPARQL UPDATE; return (triples added, triples removed)."""
        from rdflib.plugins.sparql import prepareUpdate
        from rdflib.plugins.sparql.update import evalUpdate

        text = with_prologue(sparql_update)
        try:
            parsed = prepareUpdate(text)
        except Exception as error:
            raise QuerySyntaxError(f"SPARQL update syntax error: {_one_line(error)}") from None
        if any(op.name == "Load" for op in parsed.algebra):
            raise KnowledgeGraphError("LOAD is not allowed: add files with `tinyfleet kg` commands")
        overlay = OverlayStore(self.graph)
        try:
            evalUpdate(Graph(store=overlay), parsed)
        except Exception as error:
            raise KnowledgeGraphError(f"update failed: {_one_line(error)}") from None
        self._rederive_profiles(overlay)
        after, touched = self._after_state(overlay)
        found = [v for v in validation.violations(after) if v.focus in touched]
        if found:
            raise ShapeViolation([str(v) for v in found])
        self._apply(overlay.removed, overlay.added)
        return len(overlay.added), len(overlay.removed)

    def _rederive_profiles(self, overlay: OverlayStore) -> None:
        """Re-derive the capability profile of every device the update touched.

        Profiles are derived data (see extract_device): an UPDATE that edits a device's
        RAM, sensors or firmware must move it to the matching profile, or the hot-path
        matchmaking query would answer from stale facts.
        """
        from rdflib import RDF

        from tinyfleet.ontology.extract_device import derive_profile
        from tinyfleet.ontology.namespaces import ID, TFO

        view = Graph(store=overlay)
        prefix = f"{ID}device/"
        devices = set()
        for subject in {t[0] for t in overlay.added | overlay.removed}:
            text = str(subject)
            if text.startswith(prefix):
                devices.add(URIRef(prefix + text[len(prefix) :].split("/", 1)[0]))
        for dev in devices:
            if (dev, RDF.type, TFO.Device) not in view:
                continue
            view.remove((dev, TFO.hasCapabilityProfile, None))
            for triple in derive_profile(view, dev):
                view.add(triple)

    def _after_state(self, overlay: OverlayStore) -> tuple[Graph, set[str]]:
        """Every touched subject's triples after the update, plus one hop of its objects.

        The hop lets sh:class see the types of linked nodes (a device's firmware ...);
        only violations whose focus node was touched count.
        """
        view = Graph(store=overlay)
        touched = {t[0] for t in overlay.added | overlay.removed}
        after = Graph()
        for subject in touched:
            for triple in view.triples((subject, None, None)):
                after.add(triple)
                obj = triple[2]
                if isinstance(obj, URIRef | BNode) and obj not in touched:
                    for hop in view.triples((obj, None, None)):
                        after.add(hop)
        return after, {str(s) for s in touched}

    def export(self, fmt: str = "turtle") -> str:
        """Serialise the whole graph (``turtle``, ``json-ld``, ``nt``, ``xml``)."""
        out = Graph()
        bind_prefixes(out)
        for triple in self.triples((None, None, None)):
            out.add(triple)
        return out.serialize(format=fmt)


def with_prologue(sparql: str) -> str:
    """Prepend the tinyfleet prefixes; a query's own PREFIX lines override them."""
    return f"{SPARQL_PROLOGUE} {sparql}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:400] or type(error).__name__
