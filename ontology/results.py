"""Render SELECT results as an aligned table, CSV or SPARQL 1.1 JSON results."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rdflib import BNode, Literal, URIRef


def plain(term: Any) -> str:
    """A term's lexical form (IRIs as is, unbound as empty)."""
    return "" if term is None else str(term)


def as_table(names: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [[plain(t) for t in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    line = "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))
    lines = [line.rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def as_csv(names: list[str], rows: list[tuple[Any, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([plain(t) for t in row] for row in rows)
    return out.getvalue().rstrip("\n")


def _binding(term: Any) -> dict[str, str]:
    if isinstance(term, URIRef):
        return {"type": "uri", "value": str(term)}
    if isinstance(term, BNode):
        return {"type": "bnode", "value": str(term)}
    assert isinstance(term, Literal)
    out = {"type": "literal", "value": str(term)}
    if term.language:
        out["xml:lang"] = term.language
    elif term.datatype:
        out["datatype"] = str(term.datatype)
    return out


def as_json(names: list[str], rows: list[tuple[Any, ...]]) -> str:
    bindings = [
        {n: _binding(t) for n, t in zip(names, row, strict=True) if t is not None} for row in rows
    ]
    return json.dumps({"head": {"vars": names}, "results": {"bindings": bindings}}, indent=2)


def render(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    return {"table": as_table, "csv": as_csv, "json": as_json}[fmt](names, rows)
