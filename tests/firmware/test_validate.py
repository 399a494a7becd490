"""The generator validates before it emits: each inconsistency the issue found is one
line and exit 2, and no C is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tinyfleet.cli import main

pytestmark = pytest.mark.tf  # the models are built with TensorFlow


def _edit(src: Path, dst: Path, change: Callable[[Any], None]) -> Path:
    """Rewrite a .tflite through the flatbuffer object API with one field changed."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(src.read_bytes(), 0))
    change(model.subgraphs[0])
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


def _conv_out_channels(sg: Any) -> None:
    tensor = sg.tensors[sg.operators[0].outputs[0]]
    tensor.shape = [*list(tensor.shape)[:3], 9]


def _huge_stride(sg: Any) -> None:
    sg.operators[0].builtinOptions.strideH = (1 << 31) - 1


def _negative_scale(sg: Any) -> None:
    q = sg.tensors[sg.operators[0].inputs[1]].quantization
    q.scale = [-0.5, *list(q.scale)[1:]]


def _pool_without_options(sg: Any) -> None:
    pool = next(op for op in sg.operators if op.builtinOptionsType == 5)  # Pool2DOptions
    pool.builtinOptions = None
    pool.builtinOptionsType = 0


def _float_input(sg: Any) -> None:
    sg.tensors[sg.inputs[0]].type = 0  # FLOAT32


def _read_before_write(sg: Any) -> None:
    op = sg.operators[1]
    op.inputs = [sg.operators[2].outputs[0], *list(op.inputs)[1:]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_conv_out_channels, "operator 0 (CONV_2D): output has 9 channels, filters give 8"),
        (_huge_stride, "operator 0 (CONV_2D): window height arithmetic overflows int32"),
        (_negative_scale, "weight scales must be finite and positive"),
        (_pool_without_options, "option filter_height is missing"),
        (_float_input, "is float32; export with int8 input and output"),
        (_read_before_write, "before any operator writes it"),
    ],
)
def test_inconsistent_model_is_one_line_exit_2(
    change: Callable[[Any], None],
    message: str,
    fixture_models: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = _edit(fixture_models["convnet"].path, tmp_path / "bad.tflite", change)
    assert main(["firmware", "generate", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinyfleet: error:") and message in err[0], err
    assert not (tmp_path / "out" / "tinyfleet_model.c").exists()


def test_unchanged_rewrite_still_generates(fixture_models: Any, tmp_path: Path) -> None:
    same = _edit(fixture_models["convnet"].path, tmp_path / "same.tflite", lambda sg: None)
    assert main(["firmware", "generate", str(same), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "tinyfleet_model.c").exists()


@pytest.mark.parametrize("command", ["build", "report"])
def test_head_sizes_must_match_the_backbone(
    command: str, fixture_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(fixture_models["digits"].path)  # 32 output features
    args = ["firmware", command, "--head-sizes", "10,5"]
    if command == "build":
        args += ["--target", "host", "--model", model, "--build-dir", str(tmp_path / "b")]
    else:
        args += [model]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "head input size 10 does not match the backbone's 32" in err[0]
    assert not (tmp_path / "b" / "model" / "tinyfleet_model.c").exists()
