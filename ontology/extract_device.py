"""Device description JSON (as published on MQTT) -> RDF.

The description format is shared (see docs/ontology.md). Field *types* are checked
here; whether required fields are present is left to the SHACL shapes, so a description
missing ``ram_bytes`` is refused with the device shape's message. One optional extension:
``"sensor_shapes": {"camera": [1, 8, 8, 1]}`` declares the sample shape a sensor pipeline
delivers (matchmaking then requires the model's input shape to equal it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rdflib import RDF, RDFS, Graph, Literal, URIRef
from rdflib.namespace import SKOS

from tinyfleet.ontology.errors import DescriptionError
from tinyfleet.ontology.jsonfields import Fields, shape_text
from tinyfleet.ontology.literals import shared_literal
from tinyfleet.ontology.namespaces import (
    NNET_LAYER_TYPES,
    S3N,
    SCHEMA,
    SOSA,
    TFO,
    device_iri,
    firmware_iri,
    modality_iri,
    operator_iri,
    profile_iri,
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
        graph.add((op, RDFS.label, shared_literal(name)))
        if name in NNET_LAYER_TYPES:  # the same layer type in the nnet: schema
            graph.add((op, SKOS.exactMatch, NNET_LAYER_TYPES[name]))


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
            g.add((dev, predicate, shared_literal(text)))
    for key, predicate in (
        ("protocol_version", TFO.protocolVersion),
        ("ram_bytes", TFO.ramBytes),
        ("flash_bytes", TFO.flashBytes),
        ("max_arena_bytes", TFO.maxArenaBytes),
        ("external_ram_bytes", TFO.externalRamBytes),
    ):
        number = f.integer(key)
        if number is not None:
            g.add((dev, predicate, shared_literal(number)))

    mcu_name = f.text("mcu")
    if mcu_name is not None:
        mcu = URIRef(f"{dev}/mcu")
        g.add((dev, TFO.hasMicrocontroller, mcu))
        g.add((mcu, RDF.type, S3N.MicroController))
        g.add((mcu, SCHEMA.name, shared_literal(mcu_name)))
        cpu = f.text("cpu")
        if cpu is not None:
            g.add((mcu, TFO.cpuCore, shared_literal(cpu)))
        clock = f.integer("clock_hz")
        if clock is not None:
            g.add((mcu, TFO.clockHz, shared_literal(clock)))

    operators = f.strings("operators")
    firmware = f.obj("firmware")
    if firmware is not None:
        fw_name = firmware.text("name", required=True)
        fw_version = firmware.text("version", required=True)
        assert fw_name is not None and fw_version is not None
        fw = firmware_iri(fw_name, fw_version, operators)
        g.add((dev, TFO.hasFirmware, fw))
        g.add((fw, RDF.type, TFO.Firmware))
        g.add((fw, SCHEMA.name, shared_literal(fw_name)))
        g.add((fw, SCHEMA.softwareVersion, shared_literal(fw_version)))
        add_operators(g, fw, TFO.supportsOperator, operators)

    shapes = f.obj("sensor_shapes")
    sensors: list[tuple[str, str | None]] = []
    for modality in sorted(set(f.strings("sensors"))):
        shape = shapes.shape(modality) if shapes is not None else None
        sensors.append((modality, None if shape is None else shape_text(shape)))
        _add_sensor(g, dev, URIRef(f"{dev}/sensor/{quote(modality, safe='-._~')}"), *sensors[-1])
    if shapes is not None:
        unknown = set(shapes.data) - set(f.strings("sensors"))
        if unknown:
            raise DescriptionError(
                f"device description: sensor_shapes names sensors it does not list: {sorted(unknown)}"
            )
    ram, flash = f.integer("ram_bytes"), f.integer("flash_bytes")
    if ram is not None and flash is not None and firmware is not None:
        _add_profile(g, dev, ram, flash, f.integer("max_arena_bytes"), fw, sensors)
    return g


def _add_sensor(g: Graph, owner: URIRef, sensor: URIRef, modality: str, shape: str | None) -> None:
    g.add((owner, TFO.hasSensor, sensor))
    g.add((sensor, RDF.type, SOSA.Sensor))
    g.add((sensor, SOSA.observes, modality_iri(modality)))
    if shape is not None:
        g.add((sensor, TFO.sampleShape, shared_literal(shape)))


def _add_profile(
    g: Graph,
    dev: URIRef,
    ram: int,
    flash: int,
    max_arena: int | None,
    fw: URIRef,
    sensors: list[tuple[str, str | None]],
) -> None:
    """Link the device to its capability profile: the facts matchmaking checks.

    Devices of one product running one firmware build share a profile, so the hot-path
    matchmaking query checks each profile once and then follows an index to its devices
    instead of evaluating every device (see eligible-profiles.rq). The profile's firmware,
    arena limit and sensors use predicates of their own: shared with the devices, every
    lookup by value would also return the (many) devices.
    """
    key = json.dumps([ram, flash, max_arena, str(fw), sensors])
    profile = profile_iri(hashlib.sha256(key.encode()).hexdigest()[:20])
    g.add((dev, TFO.hasCapabilityProfile, profile))
    g.add((profile, RDF.type, TFO.CapabilityProfile))
    g.add((profile, TFO.profileRamBytes, shared_literal(ram)))
    g.add((profile, TFO.profileFlashBytes, shared_literal(flash)))
    g.add((profile, TFO.profileFirmware, fw))
    if max_arena is not None:
        g.add((profile, TFO.profileMaxArenaBytes, shared_literal(max_arena)))
    for modality, shape in sensors:
        g.add((profile, TFO.profileModality, modality_iri(modality)))
        if shape is not None:
            g.add((profile, TFO.profileSample, shared_literal(f"{modality}={shape}")))


def derive_profile(graph: Graph, dev: URIRef) -> Graph:
    """The capability-profile triples for device ``dev`` as ``graph`` describes it now
    (including the ``hasCapabilityProfile`` link); empty if a needed fact is missing.

    Used by the store to keep profiles in step when a SPARQL UPDATE edits a device.
    """
    g = Graph()
    ram, flash = graph.value(dev, TFO.ramBytes), graph.value(dev, TFO.flashBytes)
    fw = graph.value(dev, TFO.hasFirmware)
    if not isinstance(ram, Literal) or not isinstance(flash, Literal) or not isinstance(fw, URIRef):
        return g
    if not isinstance(ram.toPython(), int) or not isinstance(flash.toPython(), int):
        return g  # ill-typed: the shapes will refuse the write
    max_arena = graph.value(dev, TFO.maxArenaBytes)
    sensors: list[tuple[str, str | None]] = []
    for sensor in graph.objects(dev, TFO.hasSensor):
        modality = graph.value(sensor, SOSA.observes)
        if modality is None:
            continue
        shape = graph.value(sensor, TFO.sampleShape)
        sensors.append((str(modality).rsplit("#", 1)[-1], None if shape is None else str(shape)))
    arena = max_arena.toPython() if isinstance(max_arena, Literal) else None
    _add_profile(g, dev, ram.toPython(), flash.toPython(), arena, fw, sorted(sensors))
    return g
