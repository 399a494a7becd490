"""Where the packaged Turtle, shapes, queries and examples live, and cached loaders."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rdflib import Graph

PACKAGE_DIR = Path(__file__).resolve().parent
CORE_DIR = PACKAGE_DIR / "core"
SHAPES_DIR = PACKAGE_DIR / "shapes"
QUERIES_DIR = PACKAGE_DIR / "queries"
EXAMPLES_DIR = PACKAGE_DIR / "examples"


def _parse_dir(directory: Path) -> Graph:
    graph = Graph()
    for path in sorted(directory.glob("*.ttl")):
        graph.parse(path, format="turtle")
    return graph


@lru_cache(maxsize=1)
def ontology_graph() -> Graph:
    """The core ontology (all ``core/*.ttl``), parsed once. Do not modify it."""
    return _parse_dir(CORE_DIR)


@lru_cache(maxsize=1)
def shapes_graph() -> Graph:
    """The SHACL shapes (all ``shapes/*.ttl``), parsed once. Do not modify it."""
    return _parse_dir(SHAPES_DIR)
