"""Named SPARQL queries (``queries/*.rq``) with typed, safely bound parameters.

A query file starts with a header of comment lines::

    # name: model-devices
    # summary: Every device, whether it can run and train MODEL, and why not.
    # param: model id  Identifier of the model, name@version (e.g. digits-backbone@1).
    # param: min_ram_kb integer=0  Only devices with at least this much RAM (KiB).

and uses each parameter as ``$name`` in the body (``$x`` is a SPARQL variable too, so
the raw file still parses). Binding never pastes user text: a value is first converted
to an RDF term of the declared type (an integer is parsed as an integer, an ``id`` must
match ``[A-Za-z0-9._@:-]+``, an IRI may not contain ``<>"{}|^`` or spaces, a string is
escaped by rdflib), and that term's N-Triples form replaces ``$name``. A value that is
not of its type -- e.g. an injection attempt -- is a :class:`ParameterError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from rdflib import Literal, URIRef
from rdflib.namespace import XSD
from rdflib.term import Identifier

from tinyfleet.ontology.errors import ParameterError
from tinyfleet.ontology.resources import QUERIES_DIR

_ID = re.compile(r"^[A-Za-z0-9._@:-]+$")
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|^`\\]*$")
_PLACEHOLDER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
TYPES = ("id", "string", "integer", "decimal", "boolean", "iri", "datetime")


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: name, type (one of :data:`TYPES`), default, description."""

    name: str
    type: str
    default: str | None
    description: str

    def to_term(self, value: str) -> Identifier:
        """Convert a user-given text value into an RDF term of this parameter's type."""
        bad = ParameterError(
            f"parameter {self.name!r} must be {_describe(self.type)}, got {value!r}"
        )
        if self.type == "id":
            if not _ID.match(value):
                raise bad
            return Literal(value)
        if self.type == "string":
            return Literal(value)
        if self.type == "integer":
            if not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
                raise bad
            return Literal(int(value))
        if self.type == "decimal":
            try:
                return Literal(Decimal(value.strip()), datatype=XSD.decimal)
            except InvalidOperation:
                raise bad from None
        if self.type == "boolean":
            if value.lower() not in ("true", "false"):
                raise bad
            return Literal(value.lower() == "true")
        if self.type == "iri":
            if not _IRI.match(value):
                raise bad
            return URIRef(value)
        if self.type == "datetime":
            try:
                return Literal(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                raise bad from None
        raise ParameterError(f"parameter {self.name!r} has unknown type {self.type!r}")


def _describe(kind: str) -> str:
    return {
        "id": "an identifier (letters, digits, . _ @ : -)",
        "integer": "an integer",
        "decimal": "a decimal number",
        "boolean": "true or false",
        "iri": 'an absolute IRI without spaces or <>"{}|^`\\',
        "datetime": "an ISO-8601 date-time",
    }.get(kind, f"a {kind}")


@dataclass(frozen=True)
class NamedQuery:
    """A named query: its header and SPARQL body with ``$param`` placeholders."""

    name: str
    summary: str
    parameters: tuple[Parameter, ...]
    body: str
    path: Path

    def bind(self, values: dict[str, str]) -> str:
        """The query text with every ``$param`` replaced by its typed RDF term."""
        declared = {p.name: p for p in self.parameters}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise ParameterError(
                f"query {self.name!r} has no parameter {', '.join(unknown)}; "
                f"it takes: {', '.join(declared) or 'none'}"
            )
        terms: dict[str, str] = {}
        for param in self.parameters:
            value = values.get(param.name, param.default)
            if value is None:
                raise ParameterError(
                    f"query {self.name!r} needs --param {param.name}=... ({param.description})"
                )
            terms[param.name] = param.to_term(value).n3()

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in terms:  # a plain $variable in the query, not a parameter
                return match.group(0)
            return terms[name]

        return _PLACEHOLDER.sub(substitute, self.body)


def parse_named_query(path: Path) -> NamedQuery:
    """Read one ``.rq`` file with its header."""
    text = path.read_text(encoding="utf-8")
    name = path.stem
    summary = ""
    params: list[Parameter] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            continue
        key, _, rest = line[1:].strip().partition(":")
        rest = rest.strip()
        if key == "name":
            name = rest
        elif key == "summary":
            summary = rest
        elif key == "param":
            match = re.match(r"(\w+)\s+(\w+)(?:=(\S*))?\s*(.*)", rest)
            if not match or match.group(2) not in TYPES:
                raise ValueError(f"{path}: bad param line {line!r}")
            params.append(Parameter(match[1], match[2], match[3], match[4]))
    return NamedQuery(name, summary, tuple(params), text, path)


@lru_cache(maxsize=1)
def named_queries() -> dict[str, NamedQuery]:
    """All packaged named queries by name."""
    queries = (parse_named_query(p) for p in sorted(QUERIES_DIR.glob("*.rq")))
    return {q.name: q for q in queries}


def get_named_query(name: str) -> NamedQuery:
    """The named query ``name``, or a :class:`ParameterError` listing the known names."""
    queries = named_queries()
    if name not in queries:
        raise ParameterError(f"no named query {name!r}; known: {', '.join(sorted(queries))}")
    return queries[name]
