"""Matchmaking in SPARQL agrees with a brute-force Python check on every pair."""

from __future__ import annotations

import json

import pytest
from matchmaking_reference import DeviceFacts, ModelFacts, pair_reasons
from rdflib import Graph

from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.extract_model import card_to_rdf
from tinyfleet.ontology.fleetgen import generate_cards, generate_devices
from tinyfleet.ontology.matchmaking import match_device, match_model, resolve_model_id
from tinyfleet.ontology.namespaces import TFO
from tinyfleet.ontology.resources import EXAMPLES_DIR
from tinyfleet.ontology.store import KnowledgeGraph


def _fleet(kg: KnowledgeGraph, devices: list[dict], cards: list[dict]) -> dict[str, str]:
    """Load the fleet; return each device's capability profile (as extracted)."""
    profiles = {}
    for description in devices:  # generated data: spot-validated in test_generated_fleet_conforms
        graph = device_to_rdf(description)
        (profile,) = graph.objects(None, TFO.hasCapabilityProfile)
        profiles[description["device_id"]] = str(profile)
        kg.add(graph, validate=False)
    for card in cards:
        kg.add(card_to_rdf(card))
    return profiles


@pytest.fixture(scope="module")
def big() -> tuple[KnowledgeGraph, list[DeviceFacts], list[ModelFacts]]:
    devices, cards = generate_devices(10_000, seed=7), generate_cards(20, seed=7)
    kg = KnowledgeGraph.memory()
    profiles = _fleet(kg, devices, cards)
    return (
        kg,
        [DeviceFacts.from_description(d) for d in devices],
        [ModelFacts.from_card(c) for c in cards],
        profiles,
    )


def test_generated_fleet_conforms() -> None:
    from tinyfleet.ontology.validation import violations

    batch = Graph()
    for description in generate_devices(300, seed=7):
        batch += device_to_rdf(description)
    for card in generate_cards(20, seed=7):
        batch += card_to_rdf(card)
    assert violations(batch) == []


def test_eligible_devices_agree_with_brute_force_on_10000_x_20(big: tuple) -> None:
    kg, devices, models, profiles = big
    verdicts = {True: 0, False: 0}
    for model in models:
        expected = sorted(d.device_id for d in devices if not pair_reasons(d, model))
        assert list(kg.eligible(model.model_id).devices) == expected, model.model_id
        # pages list devices by capability profile, then id (profiles derived here, not read)
        paged = sorted(expected, key=lambda d: (profiles[d], d))
        page = kg.eligible(model.model_id, limit=50, offset=10)
        assert (page.total, list(page.devices)) == (len(expected), paged[10:60])
        assert kg.eligible(model.model_id, limit=0).total == len(expected)
        # consecutive pages (across profile boundaries) list each device once, in order
        pages = [kg.eligible(model.model_id, limit=997, offset=o) for o in range(0, 4_985, 997)]
        assert [d for p in pages for d in p.devices] == paged[:4_985]
        verdicts[True] += len(expected)
        verdicts[False] += len(devices) - len(expected)
    # the generated inventory must exercise both verdicts substantially
    assert verdicts[True] > 5_000 and verdicts[False] > 50_000


@pytest.mark.slow
def test_reasons_agree_with_brute_force_on_every_pair(big: tuple) -> None:
    kg, devices, models, _profiles = big
    expected = {d.device_id: d for d in devices}
    for model in models:
        rows = match_model(kg, model.model_id)
        assert len(rows) == len(devices)
        for row in rows:
            assert row.reasons == "; ".join(pair_reasons(expected[row.device], model))
            assert row.eligible == (row.reasons == "")


@pytest.mark.parametrize("backend", ["oxigraph", "rdflib"])
def test_device_side_agrees_on_both_backends(backend: str) -> None:
    devices, cards = generate_devices(150, seed=3), generate_cards(20, seed=3)
    kg = KnowledgeGraph.memory(backend)
    _fleet(kg, devices, cards)
    models = [ModelFacts.from_card(c) for c in cards]
    for description in devices[:8]:  # rdflib's engine takes ~0.7 s per device here
        facts = DeviceFacts.from_description(description)
        got = {m.model: m.reasons for m in match_device(kg, facts.device_id)}
        assert got == {m.model_id: "; ".join(pair_reasons(facts, m)) for m in models}
    for model in models:
        expected = sorted(
            d["device_id"]
            for d in devices
            if not pair_reasons(DeviceFacts.from_description(d), model)
        )
        assert list(kg.eligible(model.model_id).devices) == expected


def test_examples_match_as_documented() -> None:
    kg = KnowledgeGraph.memory()
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        if path.name.startswith("device-"):
            kg.add(device_to_rdf(data))
        elif path.name.startswith("model-"):
            kg.add(card_to_rdf(data))
    assert list(kg.eligible("digits-backbone").devices) == [
        "esp32s3-eye-0001",
        "sparkfun-edge-0001",
    ]
    assert resolve_model_id(kg, "sine-head") == "sine-head@1"
    reasons = {m.device: m.reasons for m in match_model(kg, "digits-backbone@1")}
    assert reasons["f746disco-0001"] == "camera samples are 1x96x96x1, model input is 1x8x8x1"
    assert reasons["pico-0001"] == (
        "unsupported operators: AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D;"
        " no camera sensor"
    )
    assert list(kg.eligible("presence-head@1").devices) == ["nano33-0002"]


def test_unknown_model_and_device_are_clear_errors() -> None:
    from tinyfleet.ontology.errors import KnowledgeGraphError

    kg = KnowledgeGraph.memory()
    with pytest.raises(KnowledgeGraphError, match="no model named 'nope'"):
        list(kg.eligible("nope").devices)
    with pytest.raises(KnowledgeGraphError, match="no model 'nope@1'"):
        match_model(kg, "nope@1")
    with pytest.raises(KnowledgeGraphError, match="no device 'ghost'"):
        match_device(kg, "ghost")
