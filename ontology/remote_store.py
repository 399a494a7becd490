"""An rdflib store over any SPARQL 1.1 Protocol server (Oxigraph server, Fuseki, GraphDB,
Virtuoso): the knowledge graph shared by many processes and machines.

``SparqlProtocolStore(base_url)`` sends queries to ``{base}/query`` and updates to
``{base}/update`` (the Oxigraph server's and Fuseki's layout), so nothing beyond the SPARQL
1.1 Protocol and Update is needed from the server. Reads: SELECT/ASK as SPARQL JSON
results, CONSTRUCT and triple patterns as N-Triples. Writes: ``apply(removed, added)``
sends one ``DELETE DATA ; INSERT DATA`` request (one transaction on Oxigraph), in chunks
of :data:`CHUNK` triples for bulk loads. A bearer token (``token=`` or
``$TINYFLEET_KG_TOKEN``) is sent with updates, so the store can also point at
``tinyfleet kg serve``, which validates each write again.

Blank nodes cannot be deleted through ``DELETE DATA``; tinyfleet's own descriptions use
none.
"""

from __future__ import annotations

import csv
import io
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

from rdflib import BNode, Graph, Variable
from rdflib.query import Result
from rdflib.store import Store

from tinyfleet.ontology.errors import KnowledgeGraphError
from tinyfleet.ontology.namespaces import SPARQL_PROLOGUE

Triple = tuple[Any, Any, Any]
CHUNK = 50_000
TOKEN_ENV = "TINYFLEET_KG_TOKEN"
_JSON = "application/sparql-results+json"
CANCELLED = b"The SPARQL operation has been cancelled"
_NT = "application/n-triples"


class SparqlProtocolStore(Store):
    """Reads and writes a remote graph (the server's default graph) over HTTP."""

    context_aware = False
    formula_aware = False
    graph_aware = False
    transaction_aware = False

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60.0) -> None:
        super().__init__()
        base = base_url.rstrip("/")
        self.query_url = f"{base}/query"
        self.update_url = f"{base}/update"
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.timeout = timeout

    # ------------------------------------------------------------------ HTTP
    def _post(self, url: str, text: str, content_type: str, accept: str) -> tuple[str, bytes]:
        headers = {"Content-Type": content_type, "Accept": accept}
        if self.token and url == self.update_url:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=text.encode("utf-8"), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body: bytes = response.read()
                kind = response.headers.get("Content-Type") or ""
        except urllib.error.HTTPError as error:
            detail = " ".join(error.read().decode("utf-8", "replace").split())[:400]
            if error.code == 400 and url == self.query_url:
                raise SyntaxError(detail) from None
            raise KnowledgeGraphError(f"{url}: HTTP {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise KnowledgeGraphError(f"cannot reach the SPARQL server {url}: {error}") from None
        if body.endswith(CANCELLED):  # Oxigraph's timeout cuts the body of a 200 answer
            raise KnowledgeGraphError(f"{url}: the query was cancelled by the server's timeout")
        return kind, body

    def query(  # type: ignore[override]
        self, query: Any, initNs: Any, initBindings: Any, queryGraph: Any, **kwargs: Any
    ) -> Result:
        if initBindings:
            raise NotImplementedError  # rdflib then evaluates locally; tinyfleet never binds
        content_type, body = self._post(
            self.query_url, str(query), "application/sparql-query", f"{_JSON}, {_NT};q=0.9"
        )
        if content_type.startswith(_NT) or content_type.startswith("text/turtle"):
            result = Result("CONSTRUCT")
            fmt = "nt" if content_type.startswith(_NT) else "turtle"
            result.graph = Graph().parse(data=body.decode("utf-8"), format=fmt)
            return result
        return Result.parse(io.BytesIO(body), format="json")

    def select_values(self, query: str) -> list[list[str]]:
        """A SELECT's rows as plain values (IRIs and lexical forms; "" when unbound), read
        as CSV: for internal queries whose results would cost more to parse as terms."""
        _type, body = self._post(self.query_url, query, "application/sparql-query", "text/csv")
        rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
        return rows[1:]

    def update_text(self, text: str) -> None:
        """Send one SPARQL UPDATE request."""
        self._post(self.update_url, text, "application/sparql-update", "*/*")

    # ------------------------------------------------------------------ rdflib Store API
    def triples(  # type: ignore[override]
        self, triple_pattern: Triple, context: Any = None
    ) -> Iterator[tuple[Triple, Iterator[Any]]]:
        terms = [
            Variable(name) if term is None else term
            for name, term in zip(("s", "p", "o"), triple_pattern, strict=True)
        ]
        pattern = " ".join(t.n3() for t in terms)
        _type, body = self._post(
            self.query_url,
            f"CONSTRUCT {{ {pattern} }} WHERE {{ {pattern} }}",
            "application/sparql-query",
            _NT,
        )
        for triple in Graph().parse(data=body.decode("utf-8"), format="nt"):
            yield triple, iter(())

    def triples_of(self, subjects: list[Any]) -> Iterator[Triple]:
        """Every triple whose subject is one of ``subjects`` (one request per 1,000; a
        server's blank nodes cannot be named, so blank-node subjects are skipped)."""
        subjects = [s for s in subjects if not isinstance(s, BNode)]
        for start in range(0, len(subjects), 1000):
            values = " ".join(s.n3() for s in subjects[start : start + 1000])
            text = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?s {{ {values} }} ?s ?p ?o }}"
            _type, body = self._post(self.query_url, text, "application/sparql-query", _NT)
            yield from Graph().parse(data=body.decode("utf-8"), format="nt")

    def __len__(self, context: Any = None) -> int:
        result = self.query("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", {}, {}, None)
        row = next(iter(result))
        return int(str(row[0]))  # type: ignore[index]

    def add(self, triple: Triple, context: Any = None, quoted: bool = False) -> None:  # type: ignore[override]
        self.apply((), (triple,))

    def addN(self, quads: Iterable[Any]) -> None:  # type: ignore[override]  # noqa: N802
        self.apply((), [(s, p, o) for s, p, o, _c in quads])

    def remove(self, triple_pattern: Triple, context: Any = None) -> None:  # type: ignore[override]
        if any(term is None for term in triple_pattern):
            self.apply([t for t, _ in self.triples(triple_pattern)], ())
        else:
            self.apply((triple_pattern,), ())

    def contexts(self, triple: Any = None) -> Iterator[Any]:  # type: ignore[override]
        return iter(())

    def apply(
        self, removed: Iterable[Triple], added: Iterable[Triple], before: str = "", then: str = ""
    ) -> None:
        """Run the update ``before``, delete ``removed``, insert ``added``, then run the
        update ``then`` (if any): one request up to :data:`CHUNK` triples, else one per
        chunk with ``before`` in the first and ``then`` in the last. ``before`` and
        ``then`` may use the tinyfleet prefixes (the request starts with them).
        """
        parts = [("DELETE DATA", list(removed)), ("INSERT DATA", list(added))]
        if not any(t for _v, t in parts):
            return
        for verb, triples in parts:
            if verb[0] == "D" and any(isinstance(term, BNode) for t in triples for term in t):
                raise KnowledgeGraphError("blank nodes cannot be deleted from a remote store")
        if sum(len(t) for _v, t in parts) <= CHUNK:
            requests = [" ;\n".join(_data(v, t) for v, t in parts if t)]
        else:
            requests = [
                _data(verb, triples[start : start + CHUNK])
                for verb, triples in parts
                for start in range(0, len(triples), CHUNK)
            ]
        requests[0] = " ;\n".join(text for text in (before, requests[0]) if text)
        requests[-1] = " ;\n".join(text for text in (requests[-1], then) if text)
        for text in requests:  # Oxigraph takes PREFIX only before a request's first operation
            self.update_text(f"{SPARQL_PROLOGUE}\n{text}")


def _data(verb: str, triples: list[Triple]) -> str:
    return f"{verb} {{\n{ntriples(triples)}\n}}"


def ntriples(triples: Iterable[Triple]) -> str:
    """N-Triples lines; each distinct term is written once (batches repeat most terms).

    Terms are looked up by identity first (a batch's terms are mostly shared objects;
    rdflib's ``==`` runs Python code), then by equality."""
    listed = triples if isinstance(triples, list) else list(triples)  # ids stay valid
    by_id: dict[int, str] = {}
    written: dict[Any, str] = {}

    def n3(term: Any) -> str:
        text = written.get(term)
        if text is None:
            text = written[term] = term.n3()
        by_id[id(term)] = text
        return text

    get = by_id.get
    return "\n".join(
        f"{get(id(s)) or n3(s)} {get(id(p)) or n3(p)} {get(id(o)) or n3(o)} ." for s, p, o in listed
    )
