"""Any input file -> (RDF graph, resources it replaces): RDF files, device descriptions,
model cards (+ .tflite), WoT Thing Descriptions, round records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdflib import Graph, URIRef

from tinyfleet.ontology.errors import DescriptionError
from tinyfleet.ontology.extract_device import device_to_rdf, read_json
from tinyfleet.ontology.extract_model import card_to_rdf, load_card, merge_tflite
from tinyfleet.ontology.extract_wot import is_thing_description, td_to_description, td_to_rdf
from tinyfleet.ontology.namespaces import device_iri, model_iri, round_iri
from tinyfleet.ontology.provenance import round_to_rdf

RDF_FORMATS = {
    ".ttl": "turtle",
    ".nt": "nt",
    ".n3": "n3",
    ".rdf": "xml",
    ".owl": "xml",
    ".xml": "xml",
    ".jsonld": "json-ld",
    ".trig": "trig",
}


@dataclass(frozen=True)
class Description:
    """What a file contributes: its triples, the resources it replaces, and its kind."""

    graph: Graph
    replace: tuple[URIRef, ...]
    kind: str


def parse_rdf(path: Path, fmt: str) -> Graph:
    """Parse an RDF file; malformed input is a one-line :class:`DescriptionError`."""
    graph = Graph()
    try:
        graph.parse(path, format=fmt)
    except FileNotFoundError:
        raise DescriptionError(f"{path}: no such file") from None
    except Exception as error:  # rdflib raises many kinds (BadSyntax, JSONDecodeError ...)
        message = " ".join(str(error).split())[:300]
        raise DescriptionError(f"{path}: malformed {fmt}: {message}") from None
    return graph


def describe_json(data: Any) -> Description:
    """Recognise a JSON document and translate it."""
    if isinstance(data, dict):
        if "round" in data and "strategy" in data:  # before device: a round has device_id too
            root = round_iri(str(data.get("task_id") or "default"), int(data["round"]))
            return Description(round_to_rdf(data), (root,), "round")
        if "device_id" in data:
            return Description(device_to_rdf(data), (device_iri(data["device_id"]),), "device")
        if "head" in data and "kind" in data:
            graph = card_to_rdf(data)
            return Description(graph, (model_iri(data["name"], data["version"]),), "model")
        if is_thing_description(data):
            device_id = td_to_description(data)["device_id"]
            return Description(td_to_rdf(data), (device_iri(device_id),), "thing-description")
    raise DescriptionError(
        "JSON is none of: device description (device_id), model card (kind, head), "
        "WoT Thing Description (@context, title), round record (round, strategy)"
    )


def load_description(path: str | Path) -> Description:
    """Read one input file of any supported kind."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        graph = load_card(path)
        card = read_json(path.with_name("model_card.json"))
        return Description(graph, (model_iri(card["name"], card["version"]),), "model")
    if suffix == ".json":
        data = read_json(path)
        is_jsonld = isinstance(data, dict) and ("@context" in data or "@graph" in data)
        if is_jsonld and not is_thing_description(data):
            return Description(parse_rdf(path, "json-ld"), (), "rdf")
        named = data.get("tflite_file") if isinstance(data, dict) else None
        if isinstance(named, str) and "head" in data and (path.parent / named).is_file():
            data = merge_tflite(data, path.parent / named)  # check the card against its file
        return describe_json(data)
    if suffix in RDF_FORMATS:
        return Description(parse_rdf(path, RDF_FORMATS[suffix]), (), "rdf")
    raise DescriptionError(
        f"{path}: unknown file type {suffix!r} (.ttl .nt .jsonld .rdf .json .tflite)"
    )
