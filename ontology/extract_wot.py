"""W3C WoT Thing Description (JSON) of a device -> RDF.

A TD carries the tinyfleet facts as TD extension terms under the ``tfo:`` prefix (declared
in its ``@context``): ``tfo:deviceId`` (else the last ``:``-segment of ``id``),
``tfo:board``, ``tfo:fleet``, ``tfo:mcu``, ``tfo:cpu``, ``tfo:clockHz``, ``tfo:ramBytes``,
``tfo:flashBytes``, ``tfo:maxArenaBytes``, ``tfo:firmware`` ({name, version}),
``tfo:operators``; each property affordance that is a sensor stream says
``"tfo:modality": "camera"`` (optionally ``"tfo:sampleShape": [1, 96, 96, 1]``). The TD is
read as JSON (its remote ``@context`` cannot be fetched offline), mapped onto the device
description, and typed ``td:Thing`` with ``td:title`` and ``td:hasPropertyAffordance``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rdflib import RDF, Graph, Literal, URIRef

from tinyfleet.ontology.errors import DescriptionError
from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.jsonfields import Fields
from tinyfleet.ontology.namespaces import TD, TFO, device_iri

_FIELDS = {
    "tfo:board": "board",
    "tfo:fleet": "fleet",
    "tfo:mcu": "mcu",
    "tfo:cpu": "cpu",
    "tfo:clockHz": "clock_hz",
    "tfo:ramBytes": "ram_bytes",
    "tfo:flashBytes": "flash_bytes",
    "tfo:maxArenaBytes": "max_arena_bytes",
    "tfo:externalRamBytes": "external_ram_bytes",
    "tfo:firmware": "firmware",
    "tfo:operators": "operators",
    "tfo:protocolVersion": "protocol_version",
}


def is_thing_description(data: Any) -> bool:
    """True if ``data`` looks like a WoT TD (a TD context and a title)."""
    if not isinstance(data, dict) or "title" not in data:
        return False
    context = data.get("@context")
    contexts = context if isinstance(context, list) else [context]
    return any(isinstance(c, str) and "wot/td" in c for c in contexts)


def td_to_description(td: Any) -> dict[str, Any]:
    """The device description a TD amounts to."""
    f = Fields(td, "thing description")
    device_id = f.text("tfo:deviceId")
    if device_id is None:
        thing_id = f.text("id", required=True)
        assert thing_id is not None
        device_id = thing_id.rsplit(":", 1)[-1]
    description: dict[str, Any] = {"device_id": device_id}
    for key, field in _FIELDS.items():
        if key in td:
            description[field] = td[key]
    sensors: list[str] = []
    shapes: dict[str, Any] = {}
    properties = td.get("properties") or {}
    if not isinstance(properties, dict):
        raise DescriptionError("thing description: 'properties' must be an object")
    for name, affordance in properties.items():
        a = Fields(affordance, f"thing description property {name!r}")
        modality = a.text("tfo:modality")
        if modality is not None:
            sensors.append(modality)
            if "tfo:sampleShape" in affordance:
                shapes[modality] = affordance["tfo:sampleShape"]
    description["sensors"] = sensors
    if shapes:
        description["sensor_shapes"] = shapes
    return description


def td_to_rdf(td: Any) -> Graph:
    """Translate a Thing Description into RDF (device description + TD terms)."""
    description = td_to_description(td)
    g = device_to_rdf(description)
    dev = device_iri(description["device_id"])
    g.bind("td", TD)
    g.add((dev, RDF.type, TD.Thing))
    g.add((dev, TD.title, Literal(td["title"])))
    for name in sorted(td.get("properties") or {}):
        node = URIRef(f"{dev}/affordance/{quote(name, safe='-._~')}")
        g.add((dev, TD.hasPropertyAffordance, node))
        g.add((node, RDF.type, TD.PropertyAffordance))
        g.add((node, TD.name, Literal(name)))
        modality = td["properties"][name].get("tfo:modality")
        if modality is not None:
            g.add((node, TFO.modality, URIRef(f"{TFO}{quote(modality, safe='-._~')}")))
    return g
