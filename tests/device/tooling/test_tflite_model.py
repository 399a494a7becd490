"""The TensorFlow-free .tflite reader, checked against TF's own interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from tinyfleet.device.tooling.tflite_model import Quantization, read_tflite
from tinyfleet.errors import InputFileError

pytestmark = pytest.mark.tf


def test_operators_and_options(tiny_bytes: bytes) -> None:
    model = read_tflite(tiny_bytes)
    ops = [op.op for op in model.main.operators]
    assert ops == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "MAX_POOL_2D",
        "AVERAGE_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
    ]
    assert model.operator_names == tuple(sorted(set(ops)))
    conv, dw, maxpool, avgpool, _reshape, fc = model.main.operators
    assert conv.options["padding"] == "SAME"
    assert (conv.options["stride_w"], conv.options["stride_h"]) == (1, 1)
    assert conv.options["fused_activation_function"] == "RELU"
    assert dw.options["depth_multiplier"] == 1
    assert dw.options["fused_activation_function"] == "RELU"
    for pool in (maxpool, avgpool):
        assert pool.options["filter_width"] == pool.options["filter_height"] == 2
        assert pool.options["stride_w"] == 2 and pool.options["padding"] == "VALID"
    assert fc.options["fused_activation_function"] == "RELU"
    assert fc.options["keep_num_dims"] is False
    # Filters: conv (out, kh, kw, in) per channel on axis 0; depthwise (1, kh, kw, out) on 3.
    conv_w = model.main.tensor(conv.inputs[1])
    dw_w = model.main.tensor(dw.inputs[1])
    assert conv_w.shape == (4, 3, 3, 1) and conv_w.dtype == "int8"
    assert conv_w.quantization is not None and conv_w.quantization.quantized_dimension == 0
    assert conv_w.quantization.scales.shape == (4,)
    assert dw_w.shape == (1, 3, 3, 4)
    assert dw_w.quantization is not None and dw_w.quantization.quantized_dimension == 3
    assert model.size_bytes == len(tiny_bytes)


def test_tensors_match_tensorflow_interpreter(tiny_bytes: bytes) -> None:
    tf = pytest.importorskip("tensorflow")
    interpreter = tf.lite.Interpreter(model_content=tiny_bytes)
    graph = read_tflite(tiny_bytes).main
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    assert len(details) == len(graph.tensors)
    constants = 0
    for tensor in graph.tensors:
        d = details[tensor.index]
        assert tuple(d["shape"]) == tensor.shape
        assert np.dtype(d["dtype"]).name == tensor.dtype
        qp = d["quantization_parameters"]
        if tensor.quantization is None:
            assert len(qp["scales"]) == 0
        else:
            np.testing.assert_array_equal(qp["scales"], tensor.quantization.scales)
            np.testing.assert_array_equal(qp["zero_points"], tensor.quantization.zero_points)
            assert qp["quantized_dimension"] == tensor.quantization.quantized_dimension
        if tensor.is_constant:
            constants += 1
            assert tensor.data is not None
            np.testing.assert_array_equal(interpreter.get_tensor(tensor.index), tensor.data)
    assert constants >= 5


def test_softmax_beta() -> None:
    tf = pytest.importorskip("tensorflow")
    import keras

    from tinyfleet.simulations.export import quantize_int8

    inp = keras.Input((4,), batch_size=1, name="x")
    out = keras.layers.Softmax(name="probs")(keras.layers.Dense(3, name="fc")(inp))
    model = keras.Model(inp, out, name="softmax_model")
    rep = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    assert tf is not None
    parsed = read_tflite(quantize_int8(model, rep))
    softmax = [op for op in parsed.main.operators if op.op == "SOFTMAX"]
    assert len(softmax) == 1 and softmax[0].options["beta"] == pytest.approx(1.0)


@pytest.mark.parametrize("cut", [0, 7, 8, 64, 1000, -200, -1])
def test_truncated_file_raises_input_file_error(tiny_bytes: bytes, cut: int) -> None:
    with pytest.raises(InputFileError) as info:
        read_tflite(tiny_bytes[:cut])
    assert "\n" not in str(info.value)


def test_not_a_tflite_file() -> None:
    with pytest.raises(InputFileError, match="TFL3"):
        read_tflite(b"\x00" * 64)


def test_quantization_validation() -> None:
    q = Quantization(np.array([0.5]), np.array([3]))
    assert q.scale == 0.5 and q.zero_point == 3 and not q.per_channel
    with pytest.raises(InputFileError):
        Quantization(np.array([0.5, 0.25]), np.array([0]))
    with pytest.raises(ValueError):
        _ = Quantization(np.array([0.5, 0.25]), np.array([0, 0])).scale
