"""Errors of the knowledge graph; all are :class:`tinyfleet.errors.TinyfleetError`."""

from __future__ import annotations

from tinyfleet.errors import InputFileError, TinyfleetError, UsageError


class KnowledgeGraphError(TinyfleetError):
    """Something the knowledge graph refused; the graph is unchanged."""


class ShapeViolation(KnowledgeGraphError):
    """Data does not conform to the SHACL shapes; ``messages`` holds the sh:message texts."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = list(messages)
        shown = "; ".join(self.messages[:5])
        more = f" (+{len(self.messages) - 5} more)" if len(self.messages) > 5 else ""
        super().__init__(f"data does not conform to the tinyfleet shapes: {shown}{more}")


class QuerySyntaxError(KnowledgeGraphError, UsageError):
    """A SPARQL query or update does not parse."""


class ParameterError(KnowledgeGraphError, UsageError):
    """A named-query parameter is unknown, missing or not of its declared type."""


class DescriptionError(KnowledgeGraphError, InputFileError):
    """A model card, device description, TD or RDF file is malformed."""
