"""Model cards: what a deployed model needs from a device, computed from the files.

A model card (``model_card.json`` beside ``backbone.tflite``; field list in the shared
formats note) records input/output shapes and quantisation, the operator list, flash
bytes, the tensor arena measured with TFLM, MACs per inference and the trainable head.
The knowledge graph and the firmware generator read it. No TensorFlow here.

MAC and parameter counting (per inference, batch 1):
  ``CONV_2D``: ``out_elements * kh * kw * in_channels_per_filter``;
  ``DEPTHWISE_CONV_2D``: ``out_elements * kh * kw``;
  ``FULLY_CONNECTED``: ``out_elements * in_features``;
  every other operator (pooling, reshape, softmax ...) counts 0 MACs.
  ``params`` = element count of the constant weight and bias inputs of those three
  operators (0 for the others: a RESHAPE's constant shape tensor is not a parameter).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.tooling.tflite_model import Tensor, TFLiteModel, read_tflite, read_tflite_file
from tinyfleet.errors import InputFileError, UsageError

MODEL_CARD_FILE = "model_card.json"
SENSORS = ("camera", "microphone", "accelerometer", "co2", "temperature", "humidity", "none")
KINDS = ("int8-backbone+float-head", "float-head")
_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class LayerCost:
    """Cost of one operator of the main subgraph."""

    index: int
    op: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    macs: int
    params: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "macs": self.macs,
            "params": self.params,
        }


def _elements(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def layer_costs(model: TFLiteModel) -> list[LayerCost]:
    """MACs and parameters of each operator of the main subgraph (see module docstring)."""
    graph = model.main
    costs = []
    for op in graph.operators:
        inputs: list[Tensor] = [graph.tensors[i] for i in op.inputs if i >= 0]
        outputs = [graph.tensors[i] for i in op.outputs if i >= 0]
        activations = tuple(t.shape for t in inputs if not t.is_constant)
        out_elements = sum(_elements(t.shape) for t in outputs)
        macs = params = 0
        if op.op in _WEIGHTED_OPS and len(op.inputs) >= 2 and op.inputs[1] >= 0:
            weights = graph.tensors[op.inputs[1]]
            if op.op == "CONV_2D":  # filter (out, kh, kw, in)
                macs = out_elements * weights.shape[1] * weights.shape[2] * weights.shape[3]
            elif op.op == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out)
                macs = out_elements * weights.shape[1] * weights.shape[2]
            else:  # FULLY_CONNECTED weights (out, in)
                macs = out_elements * weights.shape[-1]
            params = sum(_elements(t.shape) for t in inputs[1:] if t.is_constant)
        costs.append(
            LayerCost(
                index=op.index,
                op=op.op,
                input_shapes=activations,
                output_shapes=tuple(t.shape for t in outputs),
                macs=int(macs),
                params=int(params),
            )
        )
    return costs


def head_card(spec: HeadSpec, train_ram_bytes: int | None = None) -> dict[str, Any]:
    """The ``head`` section; RAM defaults to :func:`online_sgd_ram_bytes` without arena."""
    from tinyfleet.device.learner import online_sgd_ram_bytes

    if train_ram_bytes is None:
        train_ram_bytes = online_sgd_ram_bytes(spec, sample_bytes=4 * spec.input_dim)
    return {
        **spec.to_dict(),
        "num_params": spec.num_params,
        "train_ram_bytes": int(train_ram_bytes),
    }


def _io_card(tensor: Tensor) -> dict[str, Any]:
    q = tensor.quantization
    card: dict[str, Any] = {"shape": list(tensor.shape), "dtype": tensor.dtype}
    if q is not None and not q.per_channel:
        card.update(scale=q.scale, zero_point=q.zero_point)
    else:
        card.update(scale=None, zero_point=None)
    return card


def build_model_card(
    tflite_bytes: bytes,
    *,
    name: str,
    use_case: str,
    head_spec: HeadSpec | None,
    sensor: str,
    version: str = "1",
    tflite_file: str = "backbone.tflite",
    arena_bytes: int | None = None,
) -> dict[str, Any]:
    """Model card of an int8 backbone (``kind: int8-backbone+float-head``).

    ``arena_bytes`` is measured with TFLM when not given. ``head_spec`` ``None`` leaves
    ``head`` null (``tinyfleet inspect`` on a bare ``.tflite``).
    """
    if sensor not in SENSORS:
        raise UsageError(f"unknown sensor {sensor!r}; choose from {', '.join(SENSORS)}")
    model = read_tflite(tflite_bytes)
    if arena_bytes is None:
        from tinyfleet.device.tooling.arena import measure_arena_bytes

        arena_bytes = measure_arena_bytes(tflite_bytes)
    graph = model.main
    costs = layer_costs(model)
    return {
        "name": name,
        "version": str(version),
        "use_case": use_case,
        "kind": "int8-backbone+float-head",
        "tflite_file": tflite_file,
        "sha256": hashlib.sha256(tflite_bytes).hexdigest(),
        "input": _io_card(graph.input_tensors()[0]),
        "output": _io_card(graph.output_tensors()[0]),
        "operators": list(model.operator_names),
        "layers": [cost.to_dict() for cost in costs],
        "flash_bytes": len(tflite_bytes),
        "arena_bytes": int(arena_bytes),
        "macs": sum(cost.macs for cost in costs),
        "head": None if head_spec is None else head_card(head_spec),
        "sensor": sensor,
    }


def float_head_card(
    *, name: str, use_case: str, head_spec: HeadSpec, sensor: str, version: str = "1"
) -> dict[str, Any]:
    """Model card of a head-only model (``kind: float-head``, e.g. sine): no ``.tflite``."""
    if sensor not in SENSORS:
        raise UsageError(f"unknown sensor {sensor!r}; choose from {', '.join(SENSORS)}")
    return {
        "name": name,
        "version": str(version),
        "use_case": use_case,
        "kind": "float-head",
        "tflite_file": None,
        "sha256": None,
        "input": {"shape": [1, head_spec.input_dim], "dtype": "float32"},
        "output": {"shape": [1, head_spec.output_dim], "dtype": "float32"},
        "operators": [],
        "layers": [],
        "flash_bytes": 4 * head_spec.num_params,
        "arena_bytes": 0,
        "macs": 0,
        "head": head_card(head_spec),
        "sensor": sensor,
    }


def write_model_card(card: dict[str, Any], directory: str | Path) -> Path:
    path = Path(directory) / MODEL_CARD_FILE
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def read_model_card(path: str | Path) -> dict[str, Any]:
    """Load a ``model_card.json`` (or the one in a directory) and check its kind."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_CARD_FILE
    try:
        card = json.loads(path.read_text())
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise InputFileError(f"{path} is not valid JSON: {error.msg}") from None
    if not isinstance(card, dict) or card.get("kind") not in KINDS:
        raise InputFileError(f"{path} is not a tinyfleet model card (kind not in {KINDS})")
    return card


def inspect_tflite(path: str | Path) -> dict[str, Any]:
    """Model card for a ``.tflite`` file: the card beside it when its sha256 matches the
    file, else one computed from the file alone (``name`` from the file name, ``head``
    null, ``use_case`` unknown)."""
    path = Path(path)
    data, _model = read_tflite_file(path)
    beside = path.parent / MODEL_CARD_FILE
    if beside.is_file():
        try:
            card = read_model_card(beside)
        except InputFileError:
            card = {}
        if card.get("sha256") == hashlib.sha256(data).hexdigest():
            return card
    try:
        return build_model_card(
            data,
            name=path.stem,
            use_case="unknown",
            head_spec=None,
            sensor="none",
            tflite_file=path.name,
        )
    except InputFileError as error:
        raise InputFileError(f"{path}: {error}") from None
