"""The frozen int8 feature extractor, run on the TFLite Micro interpreter.

The backbone is a full-integer ``.tflite`` model (int8 input and output) executed by
``tflite_micro.runtime.Interpreter`` -- the same kernels a microcontroller runs, so its
outputs are the golden vectors the generated firmware must reproduce bit for bit.
No TensorFlow is imported here.

Quantisation, exactly as the firmware does it (float32 arithmetic):
  input:  ``q = clamp(round_half_away_from_zero(x / s_in) + z_in, -128, 127)``
  output: ``e = (float32(q_out) - z_out) * s_out``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyfleet.device.tooling.arena import interpreter_for, measure_arena_bytes
from tinyfleet.device.tooling.tflite_model import (
    Quantization,
    TFLiteModel,
    read_tflite,
    read_tflite_file,
)
from tinyfleet.device.wire.quant import dequantize as dequantize_affine
from tinyfleet.device.wire.quant import quantize_half_away
from tinyfleet.errors import InputFileError, UsageError


def quantize(x: np.ndarray, q: Quantization) -> np.ndarray:
    """Float -> int8 as the firmware does it (:func:`~tinyfleet.device.wire.quant.quantize_half_away`)."""
    return quantize_half_away(x, q.scale, q.zero_point)


def dequantize(q_values: np.ndarray, q: Quantization) -> np.ndarray:
    """Int8 -> float32: ``(q - zero_point) * scale`` in float32."""
    return dequantize_affine(q_values, q.scale, q.zero_point)


class Int8Backbone:
    """An int8 ``.tflite`` feature extractor on the TFLM Python interpreter.

    Parameters
    ----------
    model_bytes
        The ``.tflite`` file's bytes: one int8 input of shape ``(1, *input_shape)`` and
        one int8 output of shape ``(1, embedding_dim)``, both quantised per tensor.
    arena_bytes
        The arena size if already known (e.g. from the model card); measured otherwise.

    Attributes
    ----------
    input_shape
        Shape of ONE raw sample, without the batch dimension (e.g. ``(8, 8, 1)``).
    embedding_dim
        Length of the embedding vector.
    arena_bytes
        Tensor-arena bytes measured with TFLM (see :func:`measure_arena_bytes`).
    flash_bytes
        Size of the model file.
    macs
        Multiply-accumulates of one inference (see :mod:`tinyfleet.device.tooling.modelcard`).
    input_quant, output_quant
        Per-tensor :class:`~tinyfleet.device.tooling.tflite_model.Quantization` of input/output.
    """

    def __init__(self, model_bytes: bytes, arena_bytes: int | None = None) -> None:
        from tinyfleet.device.tooling.modelcard import layer_costs

        self.model_bytes = bytes(model_bytes)
        self.model: TFLiteModel = read_tflite(self.model_bytes)
        graph = self.model.main
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise InputFileError(
                f"backbone must have one input and one output, got {len(graph.inputs)} "
                f"and {len(graph.outputs)}"
            )
        inp, out = graph.input_tensors()[0], graph.output_tensors()[0]
        for role, tensor in (("input", inp), ("output", out)):
            if tensor.dtype != "int8" or tensor.quantization is None:
                raise InputFileError(f"backbone {role} must be quantised int8, got {tensor.dtype}")
            if tensor.quantization.per_channel:
                raise InputFileError(f"backbone {role} must be quantised per tensor")
        if len(inp.shape) < 2 or inp.shape[0] != 1 or len(out.shape) != 2 or out.shape[0] != 1:
            raise InputFileError(
                f"backbone needs batch-1 input (1, ...) and output (1, dim); got {inp.shape} "
                f"and {out.shape}"
            )
        assert inp.quantization is not None and out.quantization is not None
        self.input_quant: Quantization = inp.quantization
        self.output_quant: Quantization = out.quantization
        self.model_input_shape: tuple[int, ...] = inp.shape
        self.input_shape: tuple[int, ...] = inp.shape[1:]
        self.embedding_dim: int = int(out.shape[1])
        self.flash_bytes: int = len(self.model_bytes)
        self.macs: int = sum(cost.macs for cost in layer_costs(self.model))
        self.arena_bytes: int = (
            measure_arena_bytes(self.model_bytes) if arena_bytes is None else int(arena_bytes)
        )
        self._interpreter = interpreter_for(self.model_bytes, self.model)
        self.invocations = 0
        # The per-sample hot path reads these plain numbers, not the model's properties.
        self._in_scale, self._in_zero = self.input_quant.scale, self.input_quant.zero_point
        self._out_scale, self._out_zero = self.output_quant.scale, self.output_quant.zero_point

    @classmethod
    def from_file(cls, path: str | Path, arena_bytes: int | None = None) -> Int8Backbone:
        path = Path(path)
        data, _model = read_tflite_file(path)
        try:
            return cls(data, arena_bytes)
        except InputFileError as error:
            raise InputFileError(f"{path}: {error}") from None

    # -- one sample or a batch -------------------------------------------------------
    def _as_batch(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        arr = np.asarray(x)
        if arr.shape == self.input_shape:
            return arr[None], True
        if arr.ndim == len(self.input_shape) + 1 and arr.shape[1:] == self.input_shape:
            return arr, False
        raise UsageError(
            f"backbone expects a sample of shape {self.input_shape} or a batch "
            f"(n, {', '.join(map(str, self.input_shape))}), got {arr.shape}"
        )

    def invoke_int8(self, q_input: np.ndarray) -> np.ndarray:
        """Run TFLM on ONE already-quantised int8 sample; returns the int8 embedding."""
        q = np.asarray(q_input, dtype=np.int8).reshape(self.model_input_shape)
        self._interpreter.set_input(q, 0)
        self._interpreter.invoke()
        self.invocations += 1
        return np.array(self._interpreter.get_output(0), dtype=np.int8).reshape(-1)

    def embed_int8(self, x: np.ndarray) -> np.ndarray:
        """Quantise float input(s), run TFLM, return int8 embedding(s).

        ``x`` is one sample ``input_shape`` -> ``(embedding_dim,)``, or a batch
        ``(n, *input_shape)`` -> ``(n, embedding_dim)`` (looped: TFLM runs batch 1).
        """
        batch, single = self._as_batch(x)
        q_in = quantize(batch, self.input_quant)
        out = np.stack([self.invoke_int8(sample) for sample in q_in]) if len(q_in) else None
        if out is None:
            return np.zeros((0, self.embedding_dim), dtype=np.int8)
        return out[0] if single else out

    def dequantize_output(self, q_out: np.ndarray) -> np.ndarray:
        return dequantize(q_out, self.output_quant)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Float32 embedding(s): ``dequantize(embed_int8(x))``; one sample or a batch."""
        arr = np.asarray(x)
        if arr.shape == self.input_shape:  # one sample: the online learner's hot path
            return self.embed_one(arr)
        return self.dequantize_output(self.embed_int8(x))

    def embed_one(self, x: np.ndarray) -> np.ndarray:
        """Float32 embedding of ONE sample, without the batch bookkeeping (same numbers
        as :meth:`embed`: the same quantise, TFLM invoke and dequantise)."""
        q = quantize_half_away(x, self._in_scale, self._in_zero).reshape(self.model_input_shape)
        interpreter = self._interpreter
        interpreter.set_input(q, 0)
        interpreter.invoke()
        self.invocations += 1
        out = interpreter.get_output(0).reshape(-1)
        return dequantize_affine(out, self._out_scale, self._out_zero)
