"""`kg add-model` on a real export: the .tflite parsed with tinyfleet.device.tooling.tflite_model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import RDFS

from tinyfleet.ontology.errors import DescriptionError
from tinyfleet.ontology.loaders import load_description
from tinyfleet.ontology.namespaces import NNET, TFO, model_iri
from tinyfleet.ontology.validation import violations

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    command = [sys.executable, "-m", "tinyfleet.cli", "export", "digits", "--out", str(out)]
    subprocess.run([*command, "--epochs", "1"], check=True, capture_output=True, timeout=600)
    return out


def test_tflite_and_card_become_a_valid_model(export_dir: Path) -> None:
    card = json.loads((export_dir / "model_card.json").read_text())
    description = load_description(export_dir / "backbone.tflite")
    graph = description.graph
    assert violations(graph) == []
    m = model_iri(card["name"], card["version"])
    assert description.replace == (m,)
    ops = sorted(str(graph.value(o, RDFS.label)) for o in graph.objects(m, TFO.usesOperator))
    assert ops == card["operators"]
    assert (
        graph.value(m, TFO.flashBytes).toPython() == (export_dir / "backbone.tflite").stat().st_size
    )
    assert graph.value(m, TFO.arenaBytes).toPython() == card["arena_bytes"]
    layers = list(graph.objects(m, NNET.middleLayer)) + list(graph.objects(m, NNET.inputLayer))
    assert len(layers) + 1 == len(card["layers"])


def test_stale_card_is_refused(export_dir: Path, tmp_path: Path) -> None:
    card = json.loads((export_dir / "model_card.json").read_text())
    card["sha256"] = "0" * 64
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    (tmp_path / "backbone.tflite").write_bytes((export_dir / "backbone.tflite").read_bytes())
    with pytest.raises(DescriptionError, match="SHA-256 differs from model_card.json"):
        load_description(tmp_path / "backbone.tflite")


def test_tflite_without_card_is_refused(export_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "m.tflite").write_bytes((export_dir / "backbone.tflite").read_bytes())
    with pytest.raises(DescriptionError, match="needs model_card.json beside it"):
        load_description(tmp_path / "m.tflite")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda c: c["input"].update(shape=[1, 9, 9, 1]), "input shape [1, 8, 8, 1] differs"),
        (lambda c: c["output"].update(dtype="float32"), "output dtype int8 differs"),
        (lambda c: c["input"].update(zero_point=0), "input quantisation differs"),
        (lambda c: c["layers"][1].update(output_shapes=[[1, 2, 2, 2]]), "layer 1 output_shapes"),
        (lambda c: c["layers"].pop(), "layers, the card lists"),
    ],
)
def test_card_disagreeing_with_its_tflite_is_refused(
    export_dir: Path, tmp_path: Path, edit: object, fragment: str
) -> None:
    card = json.loads((export_dir / "model_card.json").read_text())
    edit(card)  # type: ignore[operator]
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    (tmp_path / "backbone.tflite").write_bytes((export_dir / "backbone.tflite").read_bytes())
    for path in (tmp_path / "model_card.json", tmp_path / "backbone.tflite"):
        with pytest.raises(DescriptionError, match=fragment.replace("[", r"\[")):
            load_description(path)


def test_card_naming_its_tflite_is_checked_and_kept(export_dir: Path) -> None:
    by_card = load_description(export_dir / "model_card.json")
    by_file = load_description(export_dir / "backbone.tflite")
    assert set(by_card.graph) == set(by_file.graph)
