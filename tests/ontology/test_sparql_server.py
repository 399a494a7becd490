"""`kg serve` in front of a real `oxigraph serve`: no query crashes or blocks it, malformed
requests get a 4xx, and processes share one graph through `--store URL`."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import pytest

from tinyfleet.cli import main
from tinyfleet.ontology.oxigraph_process import ManagedOxigraph
from tinyfleet.ontology.resources import EXAMPLES_DIR
from tinyfleet.ontology.store import KnowledgeGraph

TOKEN = "t0ken"
DEVICES = [str(p) for p in sorted(EXAMPLES_DIR.glob("device-*.json"))]
MODELS = [str(p) for p in sorted(EXAMPLES_DIR.glob("model-*.json"))]
IDS = "SELECT ?id WHERE { ?d a tfo:Device ; schema:identifier ?id } ORDER BY ?id"
CROSS = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("served") / "kg"
    command = [sys.executable, "-m", "tinyfleet.cli", "kg", "serve", "--port", "0"]
    command += ["--store", str(store), "--write-token", TOKEN, "--timeout", "2"]
    process = subprocess.Popen([*command, "--load", *DEVICES], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("SPARQL endpoint http://127.0.0.1:"), line
        yield line.split()[2]
    finally:
        process.terminate()
        process.wait(timeout=20)


def _post(url: str, body: bytes, content_type: str, **headers: str) -> tuple[int, str]:
    request = Request(url, data=body, headers={"Content-Type": content_type, **headers})
    try:
        with urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except HTTPError as error:
        return error.code, error.read().decode()


def _query(url: str, text: str) -> tuple[int, str]:
    return _post(
        url, text.encode(), "application/sparql-query", Accept="application/sparql-results+json"
    )


def _ids(url: str) -> list[str]:
    status, body = _query(url, IDS)
    assert status == 200, body
    return [b["id"]["value"] for b in json.loads(body)["results"]["bindings"]]


def _raw(url: str, request: bytes) -> int:
    """Send raw bytes (malformed HTTP) and return the status code of the answer."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.connect()
    assert connection.sock is not None
    connection.sock.sendall(request)
    response = http.client.HTTPResponse(connection.sock)
    response.begin()
    return response.status


def test_5000_nested_groups_get_a_4xx_and_the_server_stays_up(front: str) -> None:
    expected = [Path(p).stem.removeprefix("device-") for p in DEVICES]
    for depth in (5000, 1000):
        status, body = _query(front, "SELECT * WHERE " + "{" * depth + "}" * depth)
        assert status == 400 and "nests" in body
    assert _query(front, "SELECT * WHERE " + "{" * 20 + "}" * 20)[0] == 200
    status, body = _query(front, "SELECT * WHERE { ?s ?p ?o } # " + "x" * 300_000)
    assert status == 413
    assert _ids(front) == expected


def test_cross_join_is_cancelled_and_does_not_block_other_clients(front: str) -> None:
    hostile: dict[str, tuple[int, str]] = {}
    thread = threading.Thread(target=lambda: hostile.update(r=_query(front, CROSS)))
    thread.start()
    answers = [_ids(front) for _ in range(5)]  # while the cross join runs
    still_running = thread.is_alive()
    thread.join(timeout=60)
    status, body = hostile["r"]
    assert status == 504 and "timed out" in body
    assert still_running  # the other clients were answered during the hostile query
    assert all(a == answers[0] and a for a in answers)
    assert _ids(front) == answers[0]


def test_malformed_requests_get_a_4xx(front: str) -> None:
    path = urlsplit(front).path
    assert _raw(front, f"POST {path} HTTP/1.1\r\nContent-Length: ten\r\n\r\n".encode()) == 400
    assert _raw(front, f"POST {path} HTTP/1.1\r\nContent-Length: -1\r\n\r\n".encode()) == 400
    body = b"\xff\xfeSELECT * WHERE { ?s ?p ?o }"
    status, text = _post(front, body, "application/sparql-query")
    assert status == 400 and "UTF-8" in text
    status, text = _post(front, b"query=%FF%FE", "application/x-www-form-urlencoded")
    assert status == 400 and "UTF-8" in text
    assert _post(front, b"x", "text/plain")[0] == 415


def test_updates_need_a_strict_bearer_token_and_valid_shapes(front: str) -> None:
    text = 'INSERT { ?d schema:description "lab bench" } WHERE { ?d schema:identifier "pico-0001" }'
    update = text.encode()
    kind = "application/sparql-update"
    assert _post(front, update, kind, Authorization=TOKEN)[0] == 401
    assert _post(front, update, kind, Authorization=f"Basic {TOKEN}")[0] == 401
    assert _post(front, update, kind, Authorization=f"Bearer {TOKEN}x")[0] == 401
    bad = (
        'DELETE { ?d tfo:ramBytes ?r } WHERE { ?d schema:identifier "pico-0001" ; tfo:ramBytes ?r }'
    )
    status, body = _post(front, bad.encode(), kind, Authorization=f"Bearer {TOKEN}")
    assert status == 400 and "A device needs exactly one tfo:ramBytes" in body
    status, body = _post(front, update, kind, Authorization=f"Bearer {TOKEN}")
    assert status == 200, body
    query = 'SELECT ?t WHERE { ?d schema:identifier "pico-0001" ; schema:description ?t }'
    assert (
        json.loads(_query(front, query)[1])["results"]["bindings"][0]["t"]["value"] == "lab bench"
    )


def test_processes_share_one_graph_through_a_store_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ManagedOxigraph(tmp_path / "kg") as server:
        assert main(["kg", "add-device", "--store", server.url, *DEVICES]) == 0
        assert main(["kg", "add-model", "--store", server.url, *MODELS]) == 0
        capsys.readouterr()
        assert main(["kg", "match", "--store", server.url, "--model", "digits-backbone"]) == 0
        rows = {
            line.split()[0]: line.split(maxsplit=2)[1:]
            for line in capsys.readouterr().out.splitlines()[2:-1]
        }
        assert rows["f746disco-0001"][1].startswith("camera samples are 1x96x96x1")
        assert rows["sparkfun-edge-0001"] == ["true"]
        remote = KnowledgeGraph.remote(server.url)
        local = KnowledgeGraph.memory()
        for path in [*DEVICES, *MODELS]:
            from tinyfleet.ontology.loaders import load_description

            description = load_description(path)
            local.add(description.graph, replace=description.replace)
        assert len(remote) == len(local)
        assert remote.eligible("digits-backbone") == local.eligible("digits-backbone")
        assert remote.eligible("sine-head", limit=2, offset=1) == local.eligible(
            "sine-head", limit=2, offset=1
        )
        # a republished description replaces the old one on the server too
        description = json.loads(Path(DEVICES[0]).read_text())
        description["ram_bytes"] = 4096
        from tinyfleet.ontology.extract_device import device_to_rdf
        from tinyfleet.ontology.namespaces import device_iri

        remote.add(device_to_rdf(description), replace=[device_iri(description["device_id"])])
        _names, rows = remote.select(
            f'SELECT ?r WHERE {{ ?d schema:identifier "{description["device_id"]}" ; tfo:ramBytes ?r }}'
        )
        assert [int(r[0]) for r in rows] == [4096]


def test_add_device_with_several_files_is_all_or_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.loads(Path(DEVICES[1]).read_text())
    bad["device_id"] = "broken-0001"
    del bad["ram_bytes"]
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad))
    store = str(tmp_path / "kg")
    assert main(["kg", "add-device", "--store", store, DEVICES[0], str(bad_file)]) == 2
    assert "A device needs exactly one tfo:ramBytes" in capsys.readouterr().err
    assert main(["kg", "query", "--store", store, IDS, "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["id"]  # the good file was not written either


def test_supervisor_restarts_a_crashed_server(tmp_path: Path) -> None:
    import os
    import signal
    import time

    from tinyfleet.ontology.loaders import load_description

    with ManagedOxigraph(tmp_path / "kg") as server:
        kg = KnowledgeGraph.remote(server.url)
        kg.add(load_description(DEVICES[0]).graph)
        before = len(kg)
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (server.restarts == 0 or server.pid == pid):
            time.sleep(0.1)
        assert server.restarts == 1 and server.pid != pid
        assert len(kg) == before > 0  # the store directory survived the crash


def test_query_guard_ignores_brackets_in_strings_iris_and_comments() -> None:
    from tinyfleet.ontology.query_guard import check_query, nesting_depth

    text = 'SELECT * WHERE { ?s ?p "{{{{(((" . ?s <urn:x{{{> ?o } # {{{{{{{{'
    assert nesting_depth(text) == 1
    assert nesting_depth("SELECT * WHERE { FILTER(?a < (1)) }") == 3
    assert check_query("{" * 65) is not None and check_query("{" * 64) is None


def _counts(kg: KnowledgeGraph) -> tuple[dict[str, int], dict[str, int]]:
    """(stored tfo:profileDeviceCount, counted from the links) per profile."""
    stored = kg.select_values("SELECT ?p ?n WHERE { ?p tfo:profileDeviceCount ?n }")
    live = kg.select_values(
        "SELECT ?p (COUNT(?d) AS ?n) WHERE { ?p a tfo:CapabilityProfile"
        " OPTIONAL { ?d tfo:hasCapabilityProfile ?p } } GROUP BY ?p"
    )
    return {p: int(n) for p, n in stored}, {p: int(n) for p, n in live}


def test_batched_writes_keep_profile_counts_and_match_a_local_graph(tmp_path: Path) -> None:
    from tinyfleet.ontology.extract_device import device_to_rdf
    from tinyfleet.ontology.extract_model import card_to_rdf
    from tinyfleet.ontology.fleetgen import generate_cards, generate_devices
    from tinyfleet.ontology.namespaces import device_iri
    from tinyfleet.ontology.remote_store import SparqlProtocolStore

    devices = generate_devices(300, seed=11)
    batches = [
        [(device_to_rdf(d), [device_iri(d["device_id"])]) for d in devices[i : i + 70]]
        for i in range(0, 300, 70)
    ]
    cards = [(card_to_rdf(c), []) for c in generate_cards(5, seed=11)]
    local = KnowledgeGraph.memory()
    for batch in [*batches, cards]:
        local.add_all(batch)
    with ManagedOxigraph(tmp_path / "kg") as server:
        remote = KnowledgeGraph.remote(server.url)
        assert remote.add_batches([*batches, cards]) > 0
        # a second pass replaces every device: the counts must not double
        moved = [dict(d, ram_bytes=d["ram_bytes"] // 2) for d in devices[:50]]
        remote.add_batches([[(device_to_rdf(d), [device_iri(d["device_id"])]) for d in moved]])
        local.add_all((device_to_rdf(d), [device_iri(d["device_id"])]) for d in moved)
        stored, live = _counts(remote)
        assert stored == live and sum(live.values()) == 300
        assert _counts(local)[0] == stored
        # the same descriptions again: every link is re-stated, none is new
        remote.add_all((device_to_rdf(d), [device_iri(d["device_id"])]) for d in moved)
        assert _counts(remote) == (stored, live)
        for card in generate_cards(5, seed=11):
            model = f"{card['name']}@{card['version']}"
            assert remote.eligible(model) == local.eligible(model)
            assert remote.eligible(model, limit=7, offset=5) == local.eligible(
                model, limit=7, offset=5
            )
        # a SPARQL UPDATE that moves a device to another profile recounts both profiles
        remote.update(
            "DELETE { ?d tfo:ramBytes ?r } INSERT { ?d tfo:ramBytes 1024 } WHERE"
            f" {{ BIND(<{device_iri(devices[60]['device_id'])}> AS ?d) ?d tfo:ramBytes ?r }}"
        )
        stored, live = _counts(remote)
        assert stored == live
        # an UPDATE that deletes counts gets them recounted (derived data heals)
        remote.update("DELETE WHERE { ?p tfo:profileDeviceCount ?n }")
        assert _counts(remote)[0] == _counts(remote)[1]
        # data written around tinyfleet (no counts) is counted on the fly, and
        # recount_profiles() stores the counts again
        count = "<https://w3id.org/tinyfleet/ontology#profileDeviceCount>"
        server_store = SparqlProtocolStore(server.url)
        server_store.update_text(f"DELETE WHERE {{ ?p {count} ?n }}")
        assert _counts(remote)[0] == {}
        assert remote.eligible("model-00@1", limit=3) == local.eligible("model-00@1", limit=3)
        remote.recount_profiles()
        assert _counts(remote)[0] == _counts(remote)[1]
