"""Generator pieces: TFLM's quantisation arithmetic, the arena plan, error paths."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyfleet.cli import main
from tinyfleet.firmware.arena import Buffer, plan_arena
from tinyfleet.firmware.quantize import activation_range, quantize_multiplier, round_half_away


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.0, (0, 0)),
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.25, (1 << 30, -1)),
        (0.75, (3 << 29, 0)),
        (1e-12, (0, 0)),  # shift below -31 collapses to zero, as in TFLM
    ],
)
def test_quantize_multiplier_known_values(real: float, expected: tuple[int, int]) -> None:
    assert quantize_multiplier(real) == expected


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-8, max_value=100.0, allow_nan=False))
def test_quantize_multiplier_represents_the_real_value(real: float) -> None:
    q, shift = quantize_multiplier(real)
    assert (1 << 30) <= q < (1 << 31)
    assert math.isclose(q * 2.0 ** (shift - 31), real, rel_tol=2.0**-30)


def test_round_half_away_from_zero_like_c() -> None:
    assert [round_half_away(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4)] == [1, 2, 3, -1, -3, 2]


def test_activation_ranges() -> None:
    assert activation_range("NONE", 0.1, 3) == (-128, 127)
    assert activation_range("RELU", 0.1, -5) == (-5, 127)
    assert activation_range("RELU6", 0.05, -128) == (-128, -8)
    with pytest.raises(ValueError, match="TANH"):
        activation_range("TANH", 0.1, 0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 300), st.integers(-1, 8), st.integers(0, 8)),
        min_size=1,
        max_size=12,
    )
)
def test_arena_plan_never_overlaps_live_tensors(specs: list[tuple[int, int, int]]) -> None:
    buffers = [Buffer(i, size, first, first + span) for i, (size, first, span) in enumerate(specs)]
    plan = plan_arena(buffers)
    for a in buffers:
        assert plan.offsets[a.tensor] % 16 == 0
        assert plan.offsets[a.tensor] + a.size <= plan.size
        for b in buffers:
            if a.tensor < b.tensor and a.overlaps_in_time(b):
                a0, b0 = plan.offsets[a.tensor], plan.offsets[b.tensor]
                assert a0 + a.size <= b0 or b0 + b.size <= a0
    assert plan.size <= sum((b.size + 15) // 16 * 16 for b in buffers)


@pytest.mark.tf
def test_arena_is_smaller_than_all_activations(fixture_models: Any) -> None:
    from tinyfleet.device.tooling.tflite_model import load_tflite

    for m in fixture_models.values():
        graph = load_tflite(m.path).main
        total = sum(t.nbytes for t in graph.tensors if not t.is_constant)
        assert m.generated.arena_bytes < total


@pytest.mark.tf
def test_unsupported_operator_is_one_line_error(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test model")
    import keras

    from tinyfleet.firmware.codegen import UnsupportedModelError, generate_from_file

    inp = keras.Input((4,), batch_size=1)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(inp))
    import tensorflow as tf

    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, 4)).astype(np.float32)] for _ in range(16)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path / "softmax.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(UnsupportedModelError, match="SOFTMAX"):
        generate_from_file(path, tmp_path / "out")
    assert main(["firmware", "generate", str(path), "-o", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unsupported operator SOFTMAX" in err[0]
    assert not (tmp_path / "out2" / "tinyfleet_model.c").exists()


def test_generate_cli_rejects_missing_and_corrupt_files(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["firmware", "generate", str(tmp_path / "nope.tflite"), "-o", str(tmp_path)]) == 2
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    assert main(["firmware", "generate", str(bad), "-o", str(tmp_path / "o")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(ln.startswith("tinyfleet: error:") for ln in lines)
