"""`tinyfleet server run --model-card`: the knowledge graph picks who trains and records rounds.

Three MQTT device processes; one describes itself with too little RAM for the sine head.
Matchmaking must leave it out of every round, and every round must land in the graph as a
PROV-O activity associated with the device that trained.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tinyfleet.device.mqtt_client import default_description
from tinyfleet.ontology.store import KnowledgeGraph
from tinyfleet.server.broker import ManagedBroker

pytestmark = pytest.mark.mqtt

CLI = [sys.executable, "-m", "tinyfleet"]
CARD = Path(__file__).parents[2] / "ontology" / "examples" / "model-sine-head.json"


def test_server_trains_only_eligible_devices_and_records_rounds(
    broker: ManagedBroker, tmp_path: Path
) -> None:
    url = f"mqtt://{broker.host}:{broker.port}"
    small = dict(default_description("kg-0002", "kgfleet"), ram_bytes=2048)
    small_file = tmp_path / "small.json"
    small_file.write_text(json.dumps(small))
    common = ["device", "run", "--broker", url, "--fleet", "kgfleet"]
    devices = [
        subprocess.Popen([*CLI, *common, "--device-id", "kg", "--count", "2"]),
        subprocess.Popen(
            [*CLI, *common, "--device-id", "kg-0002", "--description", str(small_file)]
        ),
    ]
    rounds = 8
    try:
        store = tmp_path / "kg"
        out = tmp_path / "run.json"
        server = subprocess.run(
            [*CLI, "server", "run", "--broker", url, "--fleet", "kgfleet", "--devices", "3",
             "--device-prefix", "kg", "--rounds", str(rounds), "--k", "5",
             "--model-card", str(CARD), "--kg-store", str(store), "--task-id", "kg-test",
             "--output", str(out), "--connect-timeout", "60"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert server.returncode == 0, server.stdout + server.stderr
    finally:
        for process in devices:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    summary = json.loads(out.read_text())
    assert summary["eligible_devices"] == 2
    assert summary["accepted"] == rounds
    assert summary["rounds_recorded_in_kg"] == rounds

    kg = KnowledgeGraph.open(store)
    try:
        _names, rows = kg.select(
            """
            SELECT ?n ?id WHERE {
              ?r a tfo:TrainingRound ; tfo:roundNumber ?n ; tfo:partOfTask ?t ;
                 prov:wasAssociatedWith ?d .
              ?t schema:identifier "kg-test" .
              ?d schema:identifier ?id .
            } ORDER BY ?n
            """
        )
    finally:
        kg.close()
    assert [int(n) for n, _ in rows] == list(range(1, rounds + 1))
    assert {str(d) for _, d in rows} <= {"kg-0000", "kg-0001"}


@pytest.mark.parametrize(
    "content,message",
    [("{bad", "malformed JSON"), (None, "no such file"), ('{"x": 1}', "not a model card")],
)
def test_server_run_refuses_a_bad_model_card(tmp_path: Path, capsys, content, message) -> None:
    """Checked before any broker connection: one line, exit 2, nothing started."""
    from tinyfleet.cli import main

    card = tmp_path / "card.json"
    if content is not None:
        card.write_text(content)
    argv = ["server", "run", "--broker", "mqtt://127.0.0.1:1", "--devices", "1"]
    assert main([*argv, "--model-card", str(card)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
