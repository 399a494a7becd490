"""A SPARQL 1.1 Protocol endpoint at ``/sparql`` over a :class:`KnowledgeGraph`.

* Query: ``GET /sparql?query=...``, ``POST`` with ``application/x-www-form-urlencoded``
  (``query=...``) or ``application/sparql-query``. SELECT/ASK results as
  ``application/sparql-results+json`` (default), ``application/sparql-results+xml``,
  ``text/csv`` or ``text/tab-separated-values``; CONSTRUCT/DESCRIBE as ``text/turtle``
  (default), ``application/n-triples``, ``application/ld+json`` or ``application/rdf+xml``,
  chosen by the ``Accept`` header.
* Update: ``POST`` with ``application/sparql-update`` or form field ``update=...``. Refused
  (403) unless the server was started with a write token, and (401) unless the request
  carries ``Authorization: Bearer <token>``. Every update is SHACL-validated; a refused
  one returns 400 with the shapes' messages and changes nothing.

Built on the standard library's ThreadingHTTPServer; a lock serialises store access.
"""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tinyfleet.ontology.errors import KnowledgeGraphError
from tinyfleet.ontology.store import KnowledgeGraph

_SELECT_TYPES = {
    "application/sparql-results+json": "json",
    "application/json": "json",
    "application/sparql-results+xml": "xml",
    "application/xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
}
_GRAPH_TYPES = {
    "text/turtle": "turtle",
    "application/n-triples": "nt",
    "application/ld+json": "json-ld",
    "application/rdf+xml": "xml",
}


def _negotiate(accept: str, offered: dict[str, str]) -> str:
    """The first offered media type the Accept header allows (quality-ordered)."""
    ranges = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        ranges.append((-quality, position, media.lower()))
    for _q, _pos, media in sorted(ranges):
        if media in offered:
            return media
        if media in ("*/*", "application/*", "text/*"):
            prefix = media.split("/")[0]
            for candidate in offered:
                if prefix == "*" or candidate.startswith(prefix):
                    return candidate
    return next(iter(offered))


class SparqlServer(ThreadingHTTPServer):
    """The HTTP server; holds the knowledge graph, the write token and a lock."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], kg: KnowledgeGraph, write_token: str | None):
        super().__init__(address, SparqlHandler)
        self.kg = kg
        self.write_token = write_token
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/sparql"


class SparqlHandler(BaseHTTPRequestHandler):
    server: SparqlServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # quiet; the CLI prints the URL once

    def _send(
        self, status: int, body: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/sparql":
            self._send(404, "not found: the SPARQL endpoint is /sparql\n")
            return
        params = parse_qs(url.query)
        if "query" not in params:
            self._send(400, "missing 'query' parameter\n")
            return
        self._query(params["query"][0])

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/sparql":
            self._send(404, "not found: the SPARQL endpoint is /sparql\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/sparql-query":
            self._query(body)
        elif content_type == "application/sparql-update":
            self._update(body)
        elif content_type == "application/x-www-form-urlencoded":
            form = parse_qs(body)
            if "query" in form:
                self._query(form["query"][0])
            elif "update" in form:
                self._update(form["update"][0])
            else:
                self._send(400, "form needs a 'query' or an 'update' field\n")
        else:
            self._send(415, f"unsupported Content-Type {content_type!r}\n")

    def _query(self, text: str) -> None:
        try:
            with self.server.lock:
                result = self.server.kg.query(text)
                if result.type in ("SELECT", "ASK"):
                    media = _negotiate(self.headers.get("Accept") or "", _SELECT_TYPES)
                    payload = result.serialize(format=_SELECT_TYPES[media])
                else:
                    media = _negotiate(self.headers.get("Accept") or "", _GRAPH_TYPES)
                    assert result.graph is not None
                    payload = result.graph.serialize(format=_GRAPH_TYPES[media])
        except KnowledgeGraphError as error:
            self._send(400, f"{error}\n")
            return
        text_payload = payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)
        self._send(200, text_payload, f"{media}; charset=utf-8")

    def _update(self, text: str) -> None:
        token = self.server.write_token
        if token is None:
            self._send(403, "updates are refused: this endpoint is read-only (no --write-token)\n")
            return
        given = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            self._send(401, "updates need 'Authorization: Bearer <write token>'\n")
            return
        try:
            with self.server.lock:
                added, removed = self.server.kg.update(text)
        except KnowledgeGraphError as error:
            self._send(400, f"{error}\n")
            return
        self._send(200, f"ok: {added} triples added, {removed} removed\n")


def make_server(
    kg: KnowledgeGraph, host: str = "127.0.0.1", port: int = 7878, write_token: str | None = None
) -> SparqlServer:
    """Bind the endpoint (``port=0`` picks a free port; see ``server.url``)."""
    return SparqlServer((host, port), kg, write_token)
