"""Int8Backbone on TFLM: bit-exact against the bare interpreter; quantisation maths."""

from __future__ import annotations

import numpy as np
import pytest

from tinyfleet.device.backbone import Int8Backbone, dequantize, quantize
from tinyfleet.device.embedding_cache import CachedEmbedder
from tinyfleet.device.tooling.tflite_model import Quantization
from tinyfleet.errors import InputFileError, UsageError
from tinyfleet.simulations.usecases import digits

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def backbone(tiny_bytes: bytes) -> Int8Backbone:
    return Int8Backbone(tiny_bytes)


def _inputs(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    images = np.asarray(digits.all_images())[rng.choice(len(digits.all_images()), n // 2)]
    noise = rng.random((n - n // 2, 8, 8, 1), dtype=np.float32)
    return np.concatenate([images, noise])


def test_embed_int8_equals_bare_tflm_interpreter(backbone: Int8Backbone, tiny_bytes: bytes) -> None:
    from tflite_micro import runtime

    reference = runtime.Interpreter.from_bytes(tiny_bytes)
    details = reference.get_input_details(0)["quantization_parameters"]
    scale, zero = float(details["scales"][0]), int(details["zero_points"][0])
    x = _inputs(300)
    got = backbone.embed_int8(x)
    assert got.dtype == np.int8 and got.shape == (300, backbone.embedding_dim)
    for sample, row in zip(x, got, strict=True):
        # Independent quantisation: float64, half away from zero (no exact ties occur here).
        v = sample.astype(np.float64) / scale
        q = np.clip(np.trunc(v + np.copysign(0.5, v)) + zero, -128, 127).astype(np.int8)
        reference.set_input(q[None], 0)
        reference.invoke()
        np.testing.assert_array_equal(reference.get_output(0).reshape(-1), row)
    assert len({row.tobytes() for row in got}) > 200  # the outputs are not degenerate


def test_embed_is_dequantised_int8(backbone: Int8Backbone, tiny_export) -> None:
    card = tiny_export[1]
    x = _inputs(20)
    q = backbone.embed_int8(x)
    expected = (q.astype(np.float32) - np.float32(card["output"]["zero_point"])) * np.float32(
        card["output"]["scale"]
    )
    got = backbone.embed(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(backbone.embed(x[3]), expected[3])  # one sample, no batch


def test_shapes_and_costs(backbone: Int8Backbone, tiny_export) -> None:
    card = tiny_export[1]
    assert backbone.input_shape == (8, 8, 1)
    assert backbone.model_input_shape == (1, 8, 8, 1)
    assert backbone.embedding_dim == 8
    assert backbone.arena_bytes == card["arena_bytes"] > 0
    assert backbone.macs == card["macs"] == 2304 + 2304 + 128
    with pytest.raises(UsageError):
        backbone.embed(np.zeros((8, 8)))


def test_quantize_rounds_half_away_from_zero_and_clips() -> None:
    q = Quantization(np.array([0.5]), np.array([0]))
    x = np.array([0.25, -0.25, 0.75, -0.75, 0.24, 100.0, -100.0], dtype=np.float32)
    np.testing.assert_array_equal(quantize(x, q), [1, -1, 2, -2, 0, 127, -128])
    q2 = Quantization(np.array([0.1]), np.array([-128]))
    np.testing.assert_allclose(
        dequantize(np.array([-128, -118], np.int8), q2), [0.0, 1.0], rtol=1e-6
    )


def test_cached_embedder_is_bit_identical(backbone: Int8Backbone) -> None:
    images = np.asarray(digits.all_images())[:500]
    cached = CachedEmbedder(backbone, images)
    rng = np.random.default_rng(3)
    picks = images[rng.integers(0, 500, 50)]
    np.testing.assert_array_equal(cached.embed(picks), backbone.embed(picks))
    assert cached.hits == 50 and cached.misses == 0
    unseen = rng.random((3, 8, 8, 1), dtype=np.float32)
    np.testing.assert_array_equal(cached.embed(unseen), backbone.embed(unseen))
    assert cached.misses == 3
    np.testing.assert_array_equal(cached.embeddings([4, 9]), backbone.embed(images[[4, 9]]))


def test_rejects_corrupt_model(tiny_bytes: bytes) -> None:
    with pytest.raises(InputFileError):
        Int8Backbone(tiny_bytes[: len(tiny_bytes) // 2])
