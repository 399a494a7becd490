"""tinyfleet's front for a SPARQL server: limits and timeouts for reads, a gate for writes.

Clients talk to this front; the SPARQL server behind it (a managed ``oxigraph serve`` on
loopback, or any SPARQL 1.1 server given by URL) evaluates every query.

* Query: ``GET /sparql?query=...`` (also ``/query``), ``POST`` with
  ``application/sparql-query`` or a form field ``query``; the tinyfleet prefixes are
  predeclared (a query's own PREFIX lines override them). The query must pass
  :func:`~tinyfleet.ontology.query_guard.check_query` (size and nesting limits) and is then
  forwarded with the client's ``Accept`` header; the answer comes back as the server gave
  it, unless it is cut by the server's timeout (504), too large (413), or the server is
  down (503, the supervisor restarts it).
* Update: ``POST /sparql`` (also ``/update``) with ``application/sparql-update`` or a form
  field ``update``: 403 without a write token, 401 unless the request carries exactly
  ``Authorization: Bearer <token>``; the update is SHACL-validated on the resulting state
  (:meth:`KnowledgeGraph.update`) and applied only if it conforms (else 400 with the
  shapes' messages). Writes are serialised; reads run concurrently.
* Malformed requests (non-numeric Content-Length, invalid UTF-8, unknown paths) get a 4xx.
* A page for people at ``/`` (``web/index.html``): a query editor with the named queries
  (``/named-queries``; run through ``/named?name=N&param=value``, bound server-side with
  typed parameters) and an inventory view (devices, models, versions, last rounds).
"""

from __future__ import annotations

import hmac
import http.client
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tinyfleet.ontology.errors import KnowledgeGraphError
from tinyfleet.ontology.query_guard import MAX_NESTING, MAX_QUERY_BYTES, check_query
from tinyfleet.ontology.store import KnowledgeGraph, with_prologue

PAGE = Path(__file__).with_name("web") / "index.html"
CANCELLED = b"The SPARQL operation has been cancelled"  # oxigraph's mid-stream timeout mark
MAX_UPDATE_BYTES = 64 * 1024 * 1024
MAX_RESULT_BYTES = 64 * 1024 * 1024
QUERY_PATHS = ("/sparql", "/query")
UPDATE_PATHS = ("/sparql", "/update")


class BadRequest(Exception):
    """A request refused with an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SparqlFront(ThreadingHTTPServer):
    """The HTTP front: upstream base URL, the write path, the token and the limits."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        upstream: str,
        write_token: str | None,
        timeout_s: float = 10.0,
        max_query_bytes: int = MAX_QUERY_BYTES,
        max_nesting: int = MAX_NESTING,
    ) -> None:
        super().__init__(address, FrontHandler)
        self.upstream = upstream.rstrip("/")
        self.kg = KnowledgeGraph.remote(self.upstream, token="")  # the validated write path
        self.write_token = write_token
        self.timeout_s = timeout_s
        self.max_query_bytes = max_query_bytes
        self.max_nesting = max_nesting
        self.write_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/sparql"


class FrontHandler(BaseHTTPRequestHandler):
    server: SparqlFront
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once on kept-alive connections
    timeout = 60  # a client that stops sending mid-request is dropped

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # quiet; the CLI prints the URL once

    def _send(self, status: int, body: bytes | str, content_type: str = "") -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type or "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self, limit: int) -> str:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise BadRequest(411, "a POST needs a Content-Length")
        if not raw.strip().isdigit():
            raise BadRequest(400, f"Content-Length must be a non-negative integer, got {raw!r}")
        length = int(raw)
        if length > limit:
            self.close_connection = True  # the unread body would be taken for a request
            raise BadRequest(413, f"request body is {length} bytes; the limit is {limit}")
        data = self.rfile.read(length)
        if len(data) < length:
            raise BadRequest(400, "request body shorter than its Content-Length")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRequest(400, f"request body is not valid UTF-8 ({error.reason})") from None

    def _form(self, text: str) -> dict[str, list[str]]:
        try:
            return parse_qs(text, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(400, "form field is not valid UTF-8") from None

    def do_GET(self) -> None:
        try:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
                return
            if url.path == "/named-queries":
                self._send(200, named_catalogue(), "application/json")
                return
            params = self._form(url.query)
            if url.path == "/named":
                self._query(bind_named(params))
                return
            if url.path not in QUERY_PATHS:
                raise BadRequest(404, "not found: the SPARQL endpoint is /sparql, the page is /")
            if "query" not in params:
                raise BadRequest(400, "missing 'query' parameter")
            self._query(params["query"][0])
        except BadRequest as error:
            self._send(error.status, f"{error}\n")

    def do_POST(self) -> None:
        try:
            path = urlsplit(self.path).path
            if path not in QUERY_PATHS + UPDATE_PATHS:
                raise BadRequest(404, "not found: the SPARQL endpoint is /sparql")
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            is_update = content_type == "application/sparql-update"
            body = self._body(
                MAX_UPDATE_BYTES
                if is_update or path == "/update"
                else self.server.max_query_bytes + 4096
            )
            if content_type == "application/sparql-query" and path in QUERY_PATHS:
                self._query(body)
            elif is_update and path in UPDATE_PATHS:
                self._update(body)
            elif content_type == "application/x-www-form-urlencoded":
                form = self._form(body)
                if "query" in form and path in QUERY_PATHS:
                    self._query(form["query"][0])
                elif "update" in form and path in UPDATE_PATHS:
                    self._update(form["update"][0])
                else:
                    raise BadRequest(400, "form needs a 'query' or an 'update' field")
            else:
                raise BadRequest(415, f"unsupported Content-Type {content_type!r} for {path}")
        except BadRequest as error:
            self._send(error.status, f"{error}\n")

    def _query(self, text: str) -> None:
        server = self.server
        refusal = check_query(text, server.max_query_bytes, server.max_nesting)
        if refusal is not None:
            raise BadRequest(refusal.status, refusal.message)
        accept = self.headers.get("Accept") or "application/sparql-results+json"
        request = urllib.request.Request(
            f"{server.upstream}/query",
            data=urlencode({"query": with_prologue(text)}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": accept},
        )
        try:
            with urllib.request.urlopen(request, timeout=server.timeout_s + 5) as response:
                body = response.read(MAX_RESULT_BYTES + 1)
                content_type = response.headers.get("Content-Type") or "text/plain"
        except urllib.error.HTTPError as error:
            detail = " ".join(error.read(4096).decode("utf-8", "replace").split())[:400]
            if error.code == 400:
                raise BadRequest(400, f"SPARQL syntax error: {detail}") from None
            raise BadRequest(502, f"SPARQL server: HTTP {error.code}: {detail}") from None
        except TimeoutError:
            raise BadRequest(504, f"query timed out (limit {server.timeout_s} s)") from None
        except http.client.IncompleteRead:
            raise BadRequest(504, f"query timed out (limit {server.timeout_s} s)") from None
        except (urllib.error.URLError, OSError) as error:
            raise BadRequest(503, f"SPARQL server unavailable, retry shortly ({error})") from None
        if len(body) > MAX_RESULT_BYTES:
            raise BadRequest(413, f"result exceeds {MAX_RESULT_BYTES} bytes: add a LIMIT")
        if body.endswith(CANCELLED):
            raise BadRequest(504, f"query timed out (limit {server.timeout_s} s)")
        self._send(200, body, content_type)

    def _update(self, text: str) -> None:
        token = self.server.write_token
        if token is None:
            raise BadRequest(
                403, "updates are refused: this endpoint is read-only (no --write-token)"
            )
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise BadRequest(401, "updates need 'Authorization: Bearer <write token>'")
        try:
            with self.server.write_lock:
                added, removed = self.server.kg.update(text)
        except KnowledgeGraphError as error:
            raise BadRequest(400, str(error)) from None
        self._send(200, f"ok: {added} triples added, {removed} removed\n")


def named_catalogue() -> str:
    """The named queries as JSON for the page: name, summary, parameters and body."""
    from tinyfleet.ontology.named_queries import named_queries

    return json.dumps(
        [
            {
                "name": q.name,
                "summary": q.summary,
                "body": "\n".join(
                    line for line in q.body.splitlines() if not line.startswith("#")
                ).strip(),
                "parameters": [
                    {
                        "name": p.name,
                        "type": p.type,
                        "default": p.default,
                        "description": p.description,
                    }
                    for p in q.parameters
                ],
            }
            for q in named_queries().values()
        ]
    )


def bind_named(params: dict[str, list[str]]) -> str:
    """``/named?name=N&param=value...``: the named query bound with typed parameters."""
    from tinyfleet.ontology.named_queries import get_named_query

    values = {key: value[0] for key, value in params.items() if key != "name"}
    try:
        return get_named_query(params.get("name", [""])[0]).bind(values)
    except KnowledgeGraphError as error:
        raise BadRequest(400, str(error)) from None


def make_server(
    upstream: str,
    host: str = "127.0.0.1",
    port: int = 7878,
    write_token: str | None = None,
    timeout_s: float = 10.0,
) -> SparqlFront:
    """Bind the front for the SPARQL server at ``upstream`` (``port=0``: a free port)."""
    return SparqlFront((host, port), upstream, write_token, timeout_s)
