"""Presence rooms in the knowledge graph: SOSA observable properties, and matchmaking
that trains the presence model only on rooms with a CO2 sensor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rdflib import RDF, RDFS, Graph, Namespace

from tinyfleet import ontology
from tinyfleet.simulations.presence_fleet import (
    ROOM_SENSORS,
    room_description,
    train_with_matchmaking,
)
from tinyfleet.simulations.usecases import presence


@pytest.fixture(scope="module")
def presence_card() -> dict[str, Any]:
    presence.load_backbone()  # exports into the session's private model folder once
    card = json.loads((presence.model_dir() / "model_card.json").read_text())
    assert card["sensor"] == "co2" and card["operators"] == ["FULLY_CONNECTED"]
    return card


def test_a_room_without_co2_never_trains(presence_card: dict[str, Any]) -> None:
    ids = [f"room-{i:04d}" for i in range(6)]
    descriptions = {i: room_description(i, "building") for i in ids}
    descriptions["room-0003"] = room_description(
        "room-0003", "building", [s for s in ROOM_SENSORS if s != "co2"]
    )
    result = train_with_matchmaking(presence_card, descriptions, rounds=40)
    kg = result["kg"]
    try:
        assert result["eligible"] == [i for i in ids if i != "room-0003"]
        assert len(result["trained"]) == 40
        assert "room-0003" not in result["trained"]
        assert len(set(result["trained"])) == 5  # every other room took part
        # Every room's sensors are SOSA sensors observing their property.
        _names, rows = kg.select(
            """
            SELECT ?id (GROUP_CONCAT(?p; separator=",") AS ?props) WHERE {
              ?d schema:identifier ?id ; tfo:hasSensor ?s .
              ?s a sosa:Sensor ; sosa:observes ?prop .
              BIND(STRAFTER(STR(?prop), "#") AS ?p)
            } GROUP BY ?id ORDER BY ?id
            """
        )
    finally:
        kg.close()
    observed = {str(i): set(str(p).split(",")) for i, p in rows}
    full = {"co2", "temperature", "humidity", "light"}
    assert observed["room-0000"] == full
    assert observed["room-0003"] == full - {"co2"}
    # ... and the core ontology declares them as sensor modalities, a kind of SOSA
    # observable property.
    core = Graph().parse(Path(ontology.__file__).parent / "core" / "tinyfleet.ttl")
    sosa = Namespace("http://www.w3.org/ns/sosa/")
    tfo_ns = Namespace("https://w3id.org/tinyfleet/ontology#")
    modality = tfo_ns.SensorModality
    assert (modality, RDFS.subClassOf, sosa.ObservableProperty) in core
    declared = {str(o).rsplit("#", 1)[-1] for o in core.subjects(RDF.type, modality)}
    assert full <= declared
