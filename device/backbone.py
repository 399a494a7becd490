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

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.device.tflite_model import Quantization, TFLiteModel, read_tflite, read_tflite_file
from tinyfleet.errors import InputFileError, UsageError

_ARENA_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")


def _generous_arena(model: TFLiteModel, model_bytes: bytes) -> int:
    """An arena surely large enough: twice every activation tensor, plus room for TFLM's
    per-operator bookkeeping. Never run TFLM near its limit in-process (it can crash)."""
    activations = sum(t.nbytes for sg in model.subgraphs for t in sg.tensors if not t.is_constant)
    return 2 * activations + len(model_bytes) + 64 * 1024


def _interpreter(model_bytes: bytes, model: TFLiteModel) -> Any:
    from tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(
            model_bytes, arena_size=_generous_arena(model, model_bytes)
        )
    except (RuntimeError, ValueError) as error:
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        raise InputFileError(f"TFLM cannot load the model: {first}") from None


@contextlib.contextmanager
def captured_fd(fd: int) -> Iterator[list[bytes]]:
    """Capture what is written to file descriptor ``fd`` (1 or 2), C code included (the
    TFLM interpreter reports on stderr); the bytes are in the yielded list afterwards."""
    result: list[bytes] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield result
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            result.append(sink.read())


# Runs in a child process: TFLM can crash (SIGSEGV) instead of failing cleanly when an
# arena is slightly too small, so sizes near the limit are never tried in-process.
_PROBE = """
import sys
import numpy as np
from tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
for index in range(int(sys.argv[3])):
    details = interpreter.get_input_details(index)
    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), index)
interpreter.invoke()
print("OK")
"""
# Also in a child process: a corrupt model can crash TFLM at any arena size, and a
# crash must be an error message (tinyfleet inspect, report), not a dead Python.
_RECORD = _PROBE.replace('print("OK")', "interpreter.print_allocations()")
_ARENA_ALIGN = 16


def _recorded_arena(path: Path, arena: int, n_inputs: int) -> int:
    """TFLM's RecordingMicroAllocator total for the model at ``path``, in a child."""
    result = subprocess.run(
        [sys.executable, "-c", _RECORD, str(path), str(arena), str(n_inputs)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    match = _ARENA_TOTAL.search(result.stdout + result.stderr)
    if result.returncode != 0 or match is None:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        why = f"signal {-result.returncode}" if result.returncode < 0 else (lines or ["?"])[-1]
        raise InputFileError(f"TFLM cannot run the model ({why})")
    return int(match.group(1))


_ARENA_CACHE: dict[str, int] = {}


def measure_arena_bytes(model_bytes: bytes) -> int:
    """Smallest tensor arena (a multiple of 16 bytes) in which TFLM runs the model.

    TFLM's ``RecordingMicroAllocator`` report (head + tail after one ``invoke``) is the
    starting point, but it leaves out the temporary allocations made while the kernels
    prepare, so the report alone can be too small to run in. The size is therefore
    found by bisection between the report and a size that works, each try in a child
    process. Results are cached per model (sha256) for the life of the process.
    """
    key = hashlib.sha256(model_bytes).hexdigest()
    if key in _ARENA_CACHE:
        return _ARENA_CACHE[key]
    model = read_tflite(model_bytes)
    n_inputs = len(model.main.inputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        recorded = _recorded_arena(path, _generous_arena(model, model_bytes), n_inputs)

        def works(size: int) -> bool:
            result = subprocess.run(
                [sys.executable, "-c", _PROBE, str(path), str(size), str(n_inputs)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            return result.returncode == 0 and result.stdout.strip() == "OK"

        low = -(-recorded // _ARENA_ALIGN)  # in units of 16 bytes; low - 1 assumed to fail
        high = low
        while not works(high * _ARENA_ALIGN):
            low = high + 1
            high = high * 2
            if high * _ARENA_ALIGN > max(64 * len(model_bytes), 1 << 24):
                raise InputFileError("TFLM cannot run the model in any arena size tried")
        while low < high:  # invariant: high works
            mid = (low + high) // 2
            if works(mid * _ARENA_ALIGN):
                high = mid
            else:
                low = mid + 1
    _ARENA_CACHE[key] = high * _ARENA_ALIGN
    return _ARENA_CACHE[key]


def _is_numpy_dtype(name: str) -> bool:
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def quantize(x: np.ndarray, q: Quantization) -> np.ndarray:
    """Float -> int8 with round-half-away-from-zero, in float32 (as the firmware does)."""
    v = np.asarray(x, dtype=np.float32) / np.float32(q.scale)
    rounded = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return np.clip(rounded + np.float32(q.zero_point), -128, 127).astype(np.int8)


def dequantize(q_values: np.ndarray, q: Quantization) -> np.ndarray:
    """Int8 -> float32: ``(q - zero_point) * scale`` in float32."""
    return (np.asarray(q_values).astype(np.float32) - np.float32(q.zero_point)) * np.float32(
        q.scale
    )


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
        Multiply-accumulates of one inference (see :mod:`tinyfleet.device.modelcard`).
    input_quant, output_quant
        Per-tensor :class:`~tinyfleet.device.tflite_model.Quantization` of input/output.
    """

    def __init__(self, model_bytes: bytes, arena_bytes: int | None = None) -> None:
        from tinyfleet.device.modelcard import layer_costs

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
        self._interpreter = _interpreter(self.model_bytes, self.model)
        self.invocations = 0

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
        return self.dequantize_output(self.embed_int8(x))
