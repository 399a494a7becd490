"""Model card of the exported tiny model; `tinyfleet inspect`; deterministic export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tinyfleet.cli import main
from tinyfleet.device.tooling.modelcard import read_model_card

pytestmark = pytest.mark.tf


def test_card_fields(tiny_export, tiny_bytes: bytes) -> None:
    directory, card = tiny_export
    assert read_model_card(directory) == json.loads(json.dumps(card))
    assert card["kind"] == "int8-backbone+float-head"
    assert card["use_case"] == "digits" and card["sensor"] == "camera"
    assert card["tflite_file"] == "backbone.tflite"
    assert card["flash_bytes"] == (directory / "backbone.tflite").stat().st_size
    assert card["sha256"] == hashlib.sha256(tiny_bytes).hexdigest()
    assert card["arena_bytes"] > 0
    assert card["operators"] == [
        "AVERAGE_POOL_2D",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "MAX_POOL_2D",
        "RESHAPE",
    ]
    assert card["input"]["shape"] == [1, 8, 8, 1] and card["input"]["dtype"] == "int8"
    assert card["input"]["zero_point"] == -128  # inputs in [0, 1]
    assert card["input"]["scale"] == pytest.approx(1 / 255, rel=1e-3)
    assert card["output"]["shape"] == [1, 8] and card["output"]["dtype"] == "int8"
    # Hand count (see models.tiny_backbone): 8*8*4*9 + 8*8*4*9 + 8*16.
    macs = [layer["macs"] for layer in card["layers"]]
    params = [layer["params"] for layer in card["layers"]]
    assert macs == [2304, 2304, 0, 0, 0, 128]
    assert params == [40, 40, 0, 0, 0, 136]
    assert card["macs"] == 4736
    assert card["layers"][0]["input_shapes"] == [[1, 8, 8, 1]]
    assert card["layers"][0]["output_shapes"] == [[1, 8, 8, 4]]
    head = card["head"]
    assert head["layer_sizes"] == [8, 32, 5] and head["loss"] == "softmax_ce"
    assert head["num_params"] == 8 * 32 + 32 + 32 * 5 + 5
    assert head["train_ram_bytes"] > 4 * head["num_params"]


def test_inspect_prints_card(tiny_export, capsys) -> None:
    directory, card = tiny_export
    assert main(["inspect", str(directory / "backbone.tflite"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(card))
    assert main(["inspect", str(directory / "backbone.tflite")]) == 0
    text = capsys.readouterr().out
    assert "DEPTHWISE_CONV_2D" in text and f"{card['arena_bytes']} bytes" in text


def test_inspect_bare_tflite_without_card(tiny_bytes: bytes, tmp_path: Path, capsys) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(tiny_bytes)
    assert main(["inspect", str(path), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["flash_bytes"] == len(tiny_bytes) and card["head"] is None
    assert card["macs"] == 4736


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_inspect_corrupt_file_fails_cleanly(tiny_bytes, tmp_path: Path, capsys, content) -> None:
    path = tmp_path / "bad.tflite"
    path.write_bytes(tiny_bytes[: len(tiny_bytes) // 3] if content is None else content)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyfleet: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_inspect_missing_file(capsys) -> None:
    assert main(["inspect", "/nonexistent/model.tflite"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_same_seed_same_bytes(tiny_bytes: bytes, tmp_path: Path) -> None:
    from tinyfleet.simulations.export import export_use_case

    export_use_case("digits", tmp_path, seed=0, epochs=1, backbone="tiny")
    assert (tmp_path / "backbone.tflite").read_bytes() == tiny_bytes


def test_export_unknown_use_case(capsys) -> None:
    assert main(["export", "nope", "--out", "/tmp/never-written"]) == 2
    assert "nope" in capsys.readouterr().err


def test_sine_export_is_head_only(tmp_path: Path) -> None:
    from tinyfleet.simulations.export import export_use_case
    from tinyfleet.simulations.usecase import get_use_case

    card = export_use_case("sine", tmp_path)
    assert card["kind"] == "float-head" and card["tflite_file"] is None
    assert card["head"]["layer_sizes"] == list(get_use_case("sine").head_spec.layer_sizes)
    assert not (tmp_path / "backbone.tflite").exists()
    assert read_model_card(tmp_path)["kind"] == "float-head"
