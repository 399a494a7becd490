"""Flower's Deployment Engine with real processes on loopback (marker ``deploy``).

``tinyfleet deploy local`` starts flower-superlink, per site a Mosquitto broker, simulated
devices and a gateway flower-supernode, runs the app with ``flwr run`` and must give the
same final parameters as the in-process run of the same devices and seed; bad input
fails in one line and leaves nothing running.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tinyfleet.cli import main
from tinyfleet.server.broker import free_port
from tinyfleet.simulations.runner import run, settings_for
from tinyfleet.simulations.usecase import get_use_case

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(
        shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None
        and shutil.which("mosquitto") is None,
        reason="needs mosquitto",
    ),
]

SMALL = ["--config", "eval-points=1", "--config", "heldout-devices=5"]


def inprocess_hashes(devices: int, rounds: int, seed: int, strategies: tuple[str, ...]) -> dict:
    settings = settings_for(
        get_use_case("sine"),
        devices=devices,
        rounds=rounds,
        seed=seed,
        strategies=strategies,
        eval_points=1,
        heldout_devices=5,
    )
    report = run(settings)
    return {n: s["final_params_sha256"] for n, s in report["strategies"].items()}


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2 :].startswith("Z"):
            continue
        if text in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def test_deploy_local_equals_in_process(tmp_path, capsys):
    out = tmp_path / "deploy"
    port = free_port()
    argv = [
        "deploy",
        "local",
        "--sites",
        "2",
        "--devices-per-site",
        "2",
        "--rounds",
        "3",
        "--seed",
        "1",
        "--strategy",
        "tinyreptile,fedavg",
        "--superlink-port",
        str(port),
        "--out",
        str(out),
        *SMALL,
    ]
    assert main(argv) == 0
    import json

    report = json.loads((out / "report.json").read_text())
    got = {n: s["final_params_sha256"] for n, s in report["strategies"].items()}
    assert got == inprocess_hashes(4, 3, 1, ("tinyreptile", "fedavg"))
    assert report["transport"] == "flower-deployment"
    assert [s["devices"] for s in report["sites"]] == [2, 2]
    assert report["deployment"]["superlink"] == f"127.0.0.1:{port}"
    assert processes_mentioning(f"127.0.0.1:{port}") == []
    assert processes_mentioning(str(out)) == []


def test_no_superlink_there_is_one_line(tmp_path, capsys):
    port = free_port()
    code = main(["deploy", "local", "--superlink", f"127.0.0.1:{port}", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"tinyfleet: error: no SuperLink at 127.0.0.1:{port} (nothing listens there)"]
    assert processes_mentioning(str(tmp_path)) == []


def test_site_broker_down_stops_the_superlink(tmp_path, capsys):
    port, dead = free_port(), free_port()
    code = main(
        [
            "deploy",
            "local",
            "--sites",
            "1",
            "--devices-per-site",
            "1",
            "--superlink-port",
            str(port),
            "--site-broker",
            f"mqtt://127.0.0.1:{dead}",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        err[-1] == f"tinyfleet: error: site-0: broker mqtt://127.0.0.1:{dead} is down (no answer)"
    )
    assert processes_mentioning(f"127.0.0.1:{port}") == []
    assert processes_mentioning(f"--port {port}") == []


def test_superlink_port_in_use(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["deploy", "local", "--superlink-port", str(port), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"tinyfleet: error: SuperLink port {port} is already in use on 127.0.0.1"]
    assert processes_mentioning(str(tmp_path)) == []


def test_tls_and_supernode_auth(tmp_path, capsys):
    """TLS on every SuperLink API and only registered SuperNodes: the run still equals
    the in-process one."""
    import json

    certs = tmp_path / "certs"
    assert main(["deploy", "certs", str(certs), "--sites", "1"]) == 0
    out = tmp_path / "deploy"
    argv = [
        "deploy",
        "local",
        "--sites",
        "1",
        "--devices-per-site",
        "2",
        "--rounds",
        "2",
        "--tls",
        str(certs),
        "--supernode-auth",
        "--out",
        str(out),
        *SMALL,
    ]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["deployment"]["tls"] and report["deployment"]["supernode_auth"]
    got = {n: s["final_params_sha256"] for n, s in report["strategies"].items()}
    assert got == inprocess_hashes(2, 2, 0, ("tinyreptile",))
    link = (out / "logs" / "superlink.log").read_text()
    assert "SuperNode authentication is disabled" not in link
    assert "insecure" not in (out / "flwr-home" / "config.toml").read_text()
    assert processes_mentioning(str(out)) == []


def test_flwr_run_on_the_simulation_runtime(tmp_path):
    from tinyfleet.simulations.deploy_sim import simulation_runtime

    config = {
        "rounds": 3,
        "devices": 4,
        "seed": 2,
        "strategy": "tinyreptile",
        "eval-points": 1,
        "heldout-devices": 5,
    }
    report = simulation_runtime(tmp_path, config, num_supernodes=2, timeout=900)
    got = {n: s["final_params_sha256"] for n, s in report["strategies"].items()}
    assert report["transport"] == "flower-simulation"
    assert got == inprocess_hashes(4, 3, 2, ("tinyreptile",))
    assert processes_mentioning(str(tmp_path)) == []


def test_knowledge_graph_picks_and_records_rounds(tmp_path, capsys):
    """With a model card, the gateways' device descriptions go into the graph, eligible
    devices train (all of them here: same numbers as in process) and every round is
    recorded in the persistent store."""
    import json

    from tinyfleet.ontology.store import KnowledgeGraph

    card = Path(__file__).parents[2] / "ontology" / "examples" / "model-sine-head.json"
    store = tmp_path / "kg"
    out = tmp_path / "deploy"
    argv = [
        "deploy",
        "local",
        "--sites",
        "2",
        "--devices-per-site",
        "1",
        "--rounds",
        "2",
        "--config",
        f"model-card={card}",
        "--config",
        f"kg-store={store}",
        "--out",
        str(out),
        *SMALL,
    ]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["knowledge_graph"]["eligible_devices"] == 2
    assert report["knowledge_graph"]["rounds_recorded"] == 2
    got = {n: s["final_params_sha256"] for n, s in report["strategies"].items()}
    assert got == inprocess_hashes(2, 2, 0, ("tinyreptile",))
    graph = KnowledgeGraph.open(str(store))
    try:
        _names, rows = graph.select(
            """
            SELECT ?n ?id WHERE {
              ?r a tfo:TrainingRound ; tfo:roundNumber ?n ; prov:wasAssociatedWith ?d .
              ?d schema:identifier ?id .
            } ORDER BY ?n
            """
        )
    finally:
        graph.close()
    assert [int(n) for n, _ in rows] == [1, 2]
    assert {str(d) for _, d in rows} <= {"sim-0000", "sim-0001"}
    assert processes_mentioning(str(out)) == []


def test_unregistered_supernode_is_refused(tmp_path, capsys):
    """SuperNode auth on: a site whose private key does not match the registered public
    key never joins; the run fails in one line and nothing is left running."""
    certs = tmp_path / "certs"
    assert main(["deploy", "certs", str(certs), "--sites", "2"]) == 0
    (certs / "site-0.pub").write_bytes((certs / "site-1.pub").read_bytes())  # wrong key
    out = tmp_path / "deploy"
    argv = [
        "deploy",
        "local",
        "--sites",
        "1",
        "--devices-per-site",
        "1",
        "--rounds",
        "1",
        "--tls",
        str(certs),
        "--supernode-auth",
        "--config",
        "site-timeout=20",
        "--timeout",
        "240",
        "--out",
        str(out),
        *SMALL,
    ]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("tinyfleet: error: ")
    supernode = (out / "logs" / "supernode-site-0.log").read_text()
    assert "SuperNode ID" not in supernode  # it never got a node id from the SuperLink
    link = (out / "logs" / "superlink.log").read_text()
    assert "No SuperNode found with the given public key" in link
    assert processes_mentioning(str(out)) == []
