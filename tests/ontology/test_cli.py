"""`tinyfleet kg ...` end to end, in process (tinyfleet.cli.main)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyfleet.cli import main
from tinyfleet.ontology.resources import EXAMPLES_DIR

EXAMPLES = [str(p) for p in sorted(EXAMPLES_DIR.iterdir())]


def test_validate_examples_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kg", "validate", *EXAMPLES]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(EXAMPLES)


def test_validate_bad_file_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = json.loads((EXAMPLES_DIR / "device-pico-0001.json").read_text())
    del bad["ram_bytes"]
    path = tmp_path / "device.json"
    path.write_text(json.dumps(bad))
    assert main(["kg", "validate", EXAMPLES[0], str(path)]) == 1
    out = capsys.readouterr().out
    assert "A device needs exactly one tfo:ramBytes, a positive integer (ram_bytes)." in out


def test_named_query_csv(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["kg", "query", "--load", *EXAMPLES, "--named", "devices-with-sensor-for-model"]
    args += ["--param", "model=keywords-backbone@1", "--param", "min_ram_kb=300", "--format", "csv"]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "device,ram",
        "esp32s3-eye-0001,524288",
        "esp32s3-eye-0002,524288",
        "f746disco-0001,327680",
        "sparkfun-edge-0001,393216",
    ]


def test_injection_attempt_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["kg", "query", "--load", *EXAMPLES, "--named", "eligible-profiles"]
    assert main([*args, "--param", 'model=x" } DROP ALL #']) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyfleet: error: parameter 'model' must be an identifier")


def test_syntax_error_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # the query goes before --load (which takes one or more files)
    assert main(["kg", "query", "SELECT ?x WHERE {", "--load", EXAMPLES[0]]) == 2
    assert "SPARQL syntax error" in capsys.readouterr().err


def test_add_match_export_with_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "kg")
    devices = [p for p in EXAMPLES if "/device-" in p]
    models = [p for p in EXAMPLES if "/model-" in p]
    assert main(["kg", "add-device", "--store", store, *devices]) == 0
    assert main(["kg", "add-model", "--store", store, *models]) == 0
    assert main(["kg", "add-model", "--store", store, devices[0]]) == 2  # not a model
    capsys.readouterr()
    assert (
        main(["kg", "match", "--store", store, "--device", "nano33-0002", "--format", "json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["eligible"]) for r in rows] == [
        ("digits-backbone@1", "false"),
        ("keywords-backbone@1", "true"),
        ("presence-head@1", "true"),
        ("sine-head@1", "true"),
    ]
    out = tmp_path / "fleet.jsonld"
    assert main(["kg", "export", "--store", store, "--format", "json-ld", "-o", str(out)]) == 0
    assert "nano33-0002" in out.read_text()


def test_list_named_queries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kg", "query", "--list"]) == 0
    assert "eligible-profiles  model:id" in capsys.readouterr().out


def test_rederive_restores_counts_and_links_after_a_raw_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinyfleet.ontology.loaders import load_description
    from tinyfleet.ontology.store import KnowledgeGraph

    store = tmp_path / "kg"
    with KnowledgeGraph.open(store) as kg:  # written around tinyfleet: facts only
        for path in EXAMPLES:
            if "/device-" in path or "/model-" in path:
                kg.graph.addN((s, p, o, kg.graph) for s, p, o in load_description(Path(path)).graph)
        assert kg.select_values("SELECT ?p WHERE { ?p tfo:profileDeviceCount ?n }") == []
        expected = {m: kg.eligible(m).devices for m in ("sine-head@1", "keywords-backbone@1")}
    capsys.readouterr()
    assert main(["kg", "rederive", "--store", str(store)]) == 0
    profiles = len([p for p in EXAMPLES if "/device-" in p])  # one product each
    assert capsys.readouterr().out.strip() == (
        f"derived again: {profiles} capability profiles counted, 4 models linked"
    )
    with KnowledgeGraph.open(store) as kg:
        counts = kg.select_values("SELECT ?p ?n WHERE { ?p tfo:profileDeviceCount ?n }")
        assert sum(int(n) for _p, n in counts) == profiles
        for model, devices in expected.items():  # now read from the links, same answer
            assert kg.select_values(
                f'SELECT ?p WHERE {{ ?m schema:identifier "{model}" ; tfo:eligibleProfile ?p }}'
            )
            assert kg.eligible(model).devices == devices
