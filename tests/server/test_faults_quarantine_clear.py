"""Quarantine in the knowledge graph and the operator's way back (issue 9, item 1): a
lying device is quarantined in the checkpoint and in the graph (SHACL-validated);
``tinyfleet server quarantine clear`` removes it from both, the SPARQL row is gone, and
the resumed run samples the device again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, RecordDict

from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt_client import default_description
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND, RoundPlan
from tinyfleet.device.wire.topics import device_ids
from tinyfleet.ontology.resources import EXAMPLES_DIR
from tinyfleet.ontology.store import KnowledgeGraph
from tinyfleet.server import checkpoint
from tinyfleet.server.fleet_kg import FleetKnowledge
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import quiet_flower, run_in_process
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.faults
quiet_flower()

SEED, DEVICES, ROUNDS, STOP_AT, LIAR = 3, 6, 60, 30, 2
SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)
IDS = device_ids(DEVICES, "sim")
SETTINGS = {"devices": DEVICES, "device_prefix": "sim", "seed": SEED, "rounds": ROUNDS}
CLI = [sys.executable, "-m", "tinyfleet", "server", "quarantine"]
SELECT = "SELECT ?d WHERE { ?d <https://w3id.org/tinyfleet/ontology#quarantinedInRound> ?r }"


class Stop(BaseException):
    """The server stops (after its checkpoint) so that the operator can step in."""


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def lying_call(asked: list[tuple[int, int]]):
    """The simulated devices; device LIAR answers all 1e30 (always refused)."""
    honest = client_app_call(make_client_app(SPEC, stream_for_device))

    def call(message: Message) -> Message:
        config = message.content["config"]
        device, server_round = int(config[KEY_DEVICE_INDEX]), int(config[KEY_ROUND])  # type: ignore[arg-type]
        asked.append((server_round, device))
        reply = honest(message)
        if device != LIAR:
            return reply
        metrics = reply.content.metric_records["metrics"]
        bad = ArrayRecord([np.full(INITIAL.shape, 1e30, np.float32)])
        return Message(RecordDict({"arrays": bad, "metrics": metrics}), reply_to=message)

    return call


def strategy(knowledge: FleetKnowledge | None) -> TinyReptile:
    def record(device: int, server_round: int, reason: str) -> None:
        if knowledge is not None:
            knowledge.record_quarantine(IDS[device], server_round, reason)

    return TinyReptile(
        PLAN, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS, quarantine_after=2,
        on_quarantine=record,
    )  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_operator_clears_a_quarantined_device_in_checkpoint_and_graph(tmp_path: Path) -> None:
    store, ckpt = tmp_path / "kg", tmp_path / "ckpt"
    card = json.loads((EXAMPLES_DIR / "model-sine-head.json").read_text())
    kg = KnowledgeGraph.open(store)
    knowledge = FleetKnowledge(kg, card)
    assert knowledge.register_devices({i: default_description(i) for i in IDS}) == []
    first = strategy(knowledge)
    start, left = checkpoint.prepare(
        first, ckpt, every=5, resume=False, settings=SETTINGS, initial=INITIAL
    )
    saving = first.on_round_end
    assert saving is not None

    def stop_after(server_round: int, theta: np.ndarray) -> None:
        saving(server_round, theta)
        if server_round == STOP_AT:
            raise Stop

    first.on_round_end = stop_after
    asked: list[tuple[int, int]] = []
    with pytest.raises(Stop):
        run_in_process(first, lying_call(asked), DEVICES, start, left)
    assert LIAR in first.quarantine.quarantined
    quarantined_in = first.quarantine.quarantined[LIAR]
    liar_rounds = [r for r, d in asked if d == LIAR]
    assert len(liar_rounds) == 2 and quarantined_in == liar_rounds[-1]
    assert all(d != LIAR for r, d in asked if r > quarantined_in)  # never sampled again
    iri = "https://w3id.org/tinyfleet/id/device/" + IDS[LIAR]
    assert [str(row[0]) for row in kg.query(SELECT)] == [iri]
    kg.close()

    listed = cli("list", "--checkpoint", str(ckpt), "--kg-store", str(store))
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert [row["device_id"] for row in doc["checkpoint"]] == [IDS[LIAR]]
    assert doc["checkpoint"][0]["round"] == quarantined_in
    assert "update norm" in doc["checkpoint"][0]["reason"]
    assert [(row["device"], row["round"]) for row in doc["knowledge_graph"]] == [
        (iri, quarantined_in)
    ]

    before = (ckpt / "checkpoint.json").read_bytes()
    for bad in (["clear", "sim-0099"], ["clear", IDS[0]]):  # not in the fleet / not quarantined
        refused = cli(*bad, "--checkpoint", str(ckpt), "--kg-store", str(store))
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert (ckpt / "checkpoint.json").read_bytes() == before  # nothing changed

    cleared = cli("clear", IDS[LIAR], "--checkpoint", str(ckpt), "--kg-store", str(store))
    assert cleared.returncode == 0, cleared.stderr
    assert "2 triples removed" in cleared.stdout
    kg = KnowledgeGraph.open(store)
    try:
        assert list(kg.query(SELECT)) == []  # the SPARQL row is gone
    finally:
        kg.close()
    saved = json.loads((ckpt / "checkpoint.json").read_text())
    assert saved["quarantine"]["quarantined"] == {} and saved["round"] == STOP_AT

    resumed = strategy(None)
    start, left = checkpoint.prepare(
        resumed, ckpt, every=5, resume=True, settings=SETTINGS, initial=INITIAL
    )
    assert left == ROUNDS - STOP_AT and not resumed.quarantine.quarantined
    asked_again: list[tuple[int, int]] = []
    run_in_process(resumed, lying_call(asked_again), DEVICES, start, left)
    assert any(d == LIAR for _r, d in asked_again)  # sampled again after the clear
    assert asked_again[0][0] == STOP_AT + 1
