"""Checks a query must pass before it reaches the SPARQL server.

Oxigraph's parser recurses once per nested group: 1,000 nested ``{`` overflow its stack
and abort the whole server (measured with oxigraph 0.5.13; 300 are fine), and a very long
query costs parse time for everyone. :func:`check_query` refuses both before forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_QUERY_BYTES = 256 * 1024
MAX_NESTING = 64  # of { ( [ together; real queries stay far below, oxigraph survives 300


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: HTTP status and a one-line message."""

    status: int
    message: str


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``{``, ``(`` and ``[`` outside strings, IRIs and comments.

    Brackets in string literals, ``<IRIs>`` and ``#`` comments do not nest anything for
    the parser, so they are skipped (a ``<`` followed by whitespace or ``=`` is the
    less-than operator, not an IRI).
    """
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth = max(0, depth - 1)
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == "<" and i + 1 < n and text[i + 1] not in " \t\r\n=":
            end = text.find(">", i)
            i = n if end < 0 else end
        elif c in "\"'":
            i = _string_end(text, i)
        i += 1
    return deepest


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    long = text.startswith(quote * 3, start)
    i = start + (3 if long else 1)
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if long and text.startswith(quote * 3, i):
            return i + 2
        if not long and text[i] in (quote, "\n"):
            return i
        i += 1
    return len(text)


def check_query(
    text: str, max_bytes: int = MAX_QUERY_BYTES, max_nesting: int = MAX_NESTING
) -> Refusal | None:
    """``None`` if ``text`` may be forwarded, else the :class:`Refusal`."""
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        return Refusal(413, f"query is {size} bytes; the limit is {max_bytes}")
    depth = nesting_depth(text)
    if depth > max_nesting:
        return Refusal(400, f"query nests {depth} groups deep; the limit is {max_nesting}")
    return None
