"""Device description JSON (as published on MQTT) -> RDF.

The description format is shared (see docs/ontology.md). Field *types* are checked
here; whether required fields are present is left to the SHACL shapes, so a description
missing ``ram_bytes`` is refused with the device shape's message. One optional extension:
``"sensor_shapes": {"camera": [1, 8, 8, 1]}`` declares the sample shape a sensor pipeline
delivers (matchmaking then requires the model's input shape to equal it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rdflib import RDF, RDFS, Graph, Literal, URIRef

from tinyfleet.ontology.errors import DescriptionError
from tinyfleet.ontology.jsonfields import Fields, shape_text
from tinyfleet.ontology.namespaces import (
    S3N,
    SCHEMA,
    SOSA,
    TFO,
    device_iri,
    firmware_iri,
    modality_iri,
    operator_iri,
)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a :class:`DescriptionError`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DescriptionError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DescriptionError(f"{path}: cannot read: {error}") from None
    except json.JSONDecodeError as error:
        raise DescriptionError(f"{path}: malformed JSON: {error}") from None


def add_operators(graph: Graph, subject: URIRef, predicate: URIRef, names: list[str]) -> None:
    """Link ``subject`` to each operator and type the operator nodes."""
    for name in sorted(set(names)):
        op = operator_iri(name)
        graph.add((subject, predicate, op))
        graph.add((op, RDF.type, TFO.Operator))
        graph.add((op, RDFS.label, Literal(name)))


def device_to_rdf(description: Any) -> Graph:
    """Translate a device description (dict) into RDF; raise on wrongly typed fields."""
    f = Fields(description, "device description")
    device_id = f.text("device_id", required=True)
    assert device_id is not None
    g = Graph()
    dev = device_iri(device_id)
    g.add((dev, RDF.type, TFO.Device))
    g.add((dev, RDF.type, S3N.SmartSensor))
    g.add((dev, SCHEMA.identifier, Literal(device_id)))
    for key, predicate in (("board", TFO.board), ("fleet", TFO.fleet)):
        text = f.text(key)
        if text is not None:
            g.add((dev, predicate, Literal(text)))
    for key, predicate in (
        ("protocol_version", TFO.protocolVersion),
        ("ram_bytes", TFO.ramBytes),
        ("flash_bytes", TFO.flashBytes),
        ("max_arena_bytes", TFO.maxArenaBytes),
        ("external_ram_bytes", TFO.externalRamBytes),
    ):
        number = f.integer(key)
        if number is not None:
            g.add((dev, predicate, Literal(number)))

    mcu_name = f.text("mcu")
    if mcu_name is not None:
        mcu = URIRef(f"{dev}/mcu")
        g.add((dev, TFO.hasMicrocontroller, mcu))
        g.add((mcu, RDF.type, S3N.MicroController))
        g.add((mcu, SCHEMA.name, Literal(mcu_name)))
        cpu = f.text("cpu")
        if cpu is not None:
            g.add((mcu, TFO.cpuCore, Literal(cpu)))
        clock = f.integer("clock_hz")
        if clock is not None:
            g.add((mcu, TFO.clockHz, Literal(clock)))

    operators = f.strings("operators")
    firmware = f.obj("firmware")
    if firmware is not None:
        fw_name = firmware.text("name", required=True)
        fw_version = firmware.text("version", required=True)
        assert fw_name is not None and fw_version is not None
        fw = firmware_iri(fw_name, fw_version, operators)
        g.add((dev, TFO.hasFirmware, fw))
        g.add((fw, RDF.type, TFO.Firmware))
        g.add((fw, SCHEMA.name, Literal(fw_name)))
        g.add((fw, SCHEMA.softwareVersion, Literal(fw_version)))
        add_operators(g, fw, TFO.supportsOperator, operators)

    shapes = f.obj("sensor_shapes")
    for modality in sorted(set(f.strings("sensors"))):
        sensor = URIRef(f"{dev}/sensor/{quote(modality, safe='-._~')}")
        g.add((dev, TFO.hasSensor, sensor))
        g.add((sensor, RDF.type, SOSA.Sensor))
        g.add((sensor, TFO.modality, modality_iri(modality)))
        shape = shapes.shape(modality) if shapes is not None else None
        if shape is not None:
            g.add((sensor, TFO.sampleShape, Literal(shape_text(shape))))
    if shapes is not None:
        unknown = set(shapes.data) - set(f.strings("sensors"))
        if unknown:
            raise DescriptionError(
                f"device description: sensor_shapes names sensors it does not list: {sorted(unknown)}"
            )
    return g
