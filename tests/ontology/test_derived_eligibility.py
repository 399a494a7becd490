"""The stored eligibility links (ontology/derived.py) equal the matchmaking rule after every
kind of write: new devices and profiles, a re-published model, SPARQL UPDATEs of a model,
a firmware build and a device, and writes that bypassed tinyfleet followed by the repair.

Each step compares, for every model, the stored ``tfo:eligibleProfile`` links with the
rule (``eligible-profiles``) evaluated on the same graph, and ``eligible()`` (which reads
the links) with a brute-force Python check of every device.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from matchmaking_reference import DeviceFacts, ModelFacts, pair_reasons

from tinyfleet.ontology.extract_device import device_to_rdf
from tinyfleet.ontology.extract_model import card_to_rdf
from tinyfleet.ontology.fleetgen import generate_cards, generate_devices
from tinyfleet.ontology.named_queries import get_named_query
from tinyfleet.ontology.namespaces import TFO, device_iri, model_iri
from tinyfleet.ontology.oxigraph_process import ManagedOxigraph
from tinyfleet.ontology.remote_store import SparqlProtocolStore, ntriples
from tinyfleet.ontology.store import KnowledgeGraph


@pytest.fixture(params=["embedded", "server"])
def kg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KnowledgeGraph]:
    if request.param == "embedded":
        yield KnowledgeGraph.memory()
        return
    with ManagedOxigraph(tmp_path / "kg") as server:
        yield KnowledgeGraph.remote(server.url)


def _links(kg: KnowledgeGraph, model: str) -> set[str]:
    rows = kg.select_values(
        f'SELECT ?p WHERE {{ ?m schema:identifier "{model}" ; tfo:eligibleProfile ?p }}'
    )
    return {row[0] for row in rows}


def _rule(kg: KnowledgeGraph, model: str) -> set[str]:
    text = get_named_query("eligible-profiles").bind({"model": model})
    return {row[0] for row in kg.select_values(text)}


def _models(kg: KnowledgeGraph) -> list[str]:
    rows = kg.select_values("SELECT ?id WHERE { ?m a nnet:NeuralNetwork ; schema:identifier ?id }")
    return sorted(row[0] for row in rows)


def _check(kg: KnowledgeGraph, devices: dict[str, dict], cards: dict[str, dict]) -> int:
    """Links == rule for every model, every model marked, and eligible() == brute force.
    Returns how many (model, profile) links there are."""
    assert _models(kg) == sorted(cards)
    marked = kg.select_values("SELECT ?m WHERE { ?m tfo:eligibleProfilesDerived true }")
    assert len(marked) == len(cards)
    total = 0
    facts = [DeviceFacts.from_description(d) for d in devices.values()]
    for model, card in cards.items():
        links = _links(kg, model)
        assert links == _rule(kg, model), model
        total += len(links)
        wanted = ModelFacts.from_card(card)
        expected = sorted(d.device_id for d in facts if not pair_reasons(d, wanted))
        assert list(kg.eligible(model).devices) == expected, model
        assert kg.eligible(model, limit=5).total == len(expected)
    return total


def _add_devices(kg: KnowledgeGraph, devices: list[dict]) -> None:
    kg.add_all((device_to_rdf(d), [device_iri(d["device_id"])]) for d in devices)


def test_links_follow_every_kind_of_write(kg: KnowledgeGraph) -> None:
    cards = {f"{c['name']}@{c['version']}": c for c in generate_cards(6, seed=5)}
    first = generate_devices(120, seed=5)
    devices = {d["device_id"]: d for d in first}
    _add_devices(kg, first)
    kg.add_all((card_to_rdf(c), [model_iri(c["name"], c["version"])]) for c in cards.values())
    links = _check(kg, devices, cards)
    assert links > 0

    # new devices of another catalogue: new profiles, linked in the same write
    second = [dict(d, device_id=f"new-{i:03d}") for i, d in enumerate(generate_devices(60, 9))]
    _add_devices(kg, second)
    devices.update({d["device_id"]: d for d in second})
    assert _check(kg, devices, cards) > links

    # a re-published model card with a much larger arena: fewer profiles pass
    name = max(cards, key=lambda m: len(_links(kg, m)))
    bigger = dict(cards[name], arena_bytes=cards[name]["arena_bytes"] + 200_000)
    before = len(_links(kg, name))
    kg.add(card_to_rdf(bigger), replace=[model_iri(bigger["name"], bigger["version"])])
    cards[name] = bigger
    _check(kg, devices, cards)
    assert len(_links(kg, name)) < before

    # a SPARQL UPDATE of the model's head (a node the model owns)
    head_ram = bigger["head"]["train_ram_bytes"]
    kg.update(
        f"DELETE {{ ?h tfo:trainRamBytes ?r }} INSERT {{ ?h tfo:trainRamBytes {head_ram // 4} }}"
        f' WHERE {{ ?m schema:identifier "{name}" ; tfo:hasTrainableHead ?h . ?h tfo:trainRamBytes ?r }}'
    )
    cards[name] = dict(bigger, head=dict(bigger["head"], train_ram_bytes=head_ram // 4))
    _check(kg, devices, cards)

    # a device moved to a profile nobody had (RAM changed by UPDATE)
    moved = first[3]["device_id"]
    kg.update(
        f"DELETE {{ ?d tfo:ramBytes ?r }} INSERT {{ ?d tfo:ramBytes 999424 }}"
        f" WHERE {{ BIND(<{device_iri(moved)}> AS ?d) ?d tfo:ramBytes ?r }}"
    )
    devices[moved] = dict(devices[moved], ram_bytes=999424)
    _check(kg, devices, cards)


def test_firmware_operator_edits_rederive_its_profiles(kg: KnowledgeGraph) -> None:
    cards = {f"{c['name']}@{c['version']}": c for c in generate_cards(8, seed=6)}
    fleet = generate_devices(80, seed=6)
    _add_devices(kg, fleet)
    kg.add_all((card_to_rdf(c), []) for c in cards.values())
    # a device that misses a model by exactly one operator its firmware build lacks
    device, model, op = next(
        (
            d,
            m,
            sorted(ModelFacts.from_card(c).operators - DeviceFacts.from_description(d).operators)[
                0
            ],
        )
        for d in fleet
        for m, c in sorted(cards.items())
        if pair_reasons(DeviceFacts.from_description(d), ModelFacts.from_card(c))
        and all(
            r.startswith("unsupported operators: ") and "," not in r
            for r in pair_reasons(DeviceFacts.from_description(d), ModelFacts.from_card(c))
        )
    )
    graph = device_to_rdf(device)
    (profile,) = {str(p) for p in graph.objects(None, TFO.hasCapabilityProfile)}
    (fw,) = {str(f) for f in graph.objects(None, TFO.hasFirmware)}
    before = {m: _links(kg, m) for m in cards}
    assert all(before[m] == _rule(kg, m) for m in cards) and profile not in before[model]
    edit = f"{{ <{fw}> tfo:supportsOperator <https://w3id.org/tinyfleet/id/operator/{op}> }}"
    kg.update(f"INSERT DATA {edit}")
    after = {m: _links(kg, m) for m in cards}
    assert all(after[m] == _rule(kg, m) for m in cards)
    assert profile in after[model]  # the build now has every operator the model uses
    kg.update(f"DELETE DATA {edit}")
    assert {m: _links(kg, m) for m in cards} == before


def test_writes_around_tinyfleet_fall_back_to_the_rule_until_repaired(tmp_path: Path) -> None:
    cards = {f"{c['name']}@{c['version']}": c for c in generate_cards(5, seed=8)}
    fleet = generate_devices(90, seed=8)
    devices = {d["device_id"]: d for d in fleet}
    with ManagedOxigraph(tmp_path / "kg") as server:
        kg = KnowledgeGraph.remote(server.url)
        _add_devices(kg, fleet)
        kg.add_all((card_to_rdf(c), []) for c in cards.values())
        _check(kg, devices, cards)
        # a bulk load around tinyfleet: no markers, no links, no counts
        raw = SparqlProtocolStore(server.url)
        raw.update_text(
            f"DELETE WHERE {{ ?m <{TFO.eligibleProfilesDerived}> ?d }} ;"
            f" DELETE WHERE {{ ?m <{TFO.eligibleProfile}> ?p }} ;"
            f" DELETE WHERE {{ ?p <{TFO.profileDeviceCount}> ?n }}"
        )
        for model, card in cards.items():  # answered by the rule, devices counted on the fly
            wanted = ModelFacts.from_card(card)
            facts = [DeviceFacts.from_description(d) for d in devices.values()]
            expected = sorted(d.device_id for d in facts if not pair_reasons(d, wanted))
            assert list(kg.eligible(model).devices) == expected
            assert kg.eligible(model, limit=3).total == len(expected)
        kg.recount_profiles()  # the repair derives links and counts again
        _check(kg, devices, cards)
        # a device of a new product written around tinyfleet (as a chunked write cut short
        # before its last request leaves it): a profile without count or links; the next
        # tinyfleet write that states that profile derives it
        raw_device, twin = (
            dict(d, device_id=f"raw-{i}")
            for i, d in enumerate(generate_devices(2, seed=77)[:1] * 2)
        )
        raw.update_text(f"INSERT DATA {{ {ntriples(list(device_to_rdf(raw_device)))} }}")
        _add_devices(kg, [twin])
        devices.update({d["device_id"]: d for d in (raw_device, twin)})
        _check(kg, devices, cards)
