"""Read a ``.tflite`` flatbuffer into plain, frozen Python objects -- without TensorFlow.

The parsing uses the flatbuffers schema module that the pinned ``tflite-micro`` package
ships (its own ``runtime`` imports the same module), plus the ``flatbuffers`` package,
so the device side and the firmware code generator need no TensorFlow.

API
---
``read_tflite(data: bytes) -> TFLiteModel`` and ``load_tflite(path) -> TFLiteModel``.
A corrupt, truncated or non-TFLite file raises :class:`tinyfleet.errors.InputFileError`
with a one-line message.

``TFLiteModel``
    ``version``, ``description``, ``subgraphs: tuple[Subgraph, ...]``, ``size_bytes``
    (length of the file), ``main`` (subgraph 0), ``operator_names`` (sorted unique
    builtin names of all operators, e.g. ``("CONV_2D", "FULLY_CONNECTED")``).
``Subgraph``
    ``name``, ``tensors: tuple[Tensor, ...]``, ``operators: tuple[Operator, ...]`` (in
    execution order), ``inputs`` / ``outputs`` (tensor indices); ``tensor(i)``,
    ``input_tensors()``, ``output_tensors()``.
``Tensor``
    ``index``, ``name``, ``shape`` (tuple of ints), ``dtype`` (numpy dtype name:
    ``"int8"``, ``"int32"``, ``"float32"`` ...; TFLite's name if numpy has none, e.g.
    ``"int4"``), ``buffer`` (buffer index), ``data`` (a read-only numpy array of
    ``dtype`` reshaped to ``shape`` for constant tensors, else ``None``),
    ``quantization`` (a :class:`Quantization` or ``None``), ``is_variable``;
    ``is_constant`` (has data), ``nbytes`` (element count x item size).
``Quantization``
    ``scales`` (float32 array), ``zero_points`` (int64 array), ``quantized_dimension``
    (the axis the scales run along when ``per_channel``); ``per_channel`` (more than one
    scale), ``scale`` / ``zero_point`` (the single per-tensor values; error if
    per-channel). ``real = scale * (q - zero_point)``.
``Operator``
    ``index``, ``op`` (builtin name, e.g. ``"DEPTHWISE_CONV_2D"``; ``"CUSTOM:<code>"`` for
    custom ops), ``version``, ``inputs`` / ``outputs`` (tensor indices; ``-1`` marks an
    omitted optional input, e.g. a bias the converter dropped), ``options`` (a dict, see
    below).

Operator options (keys are snake_case; enums are names):
    ``CONV_2D``: ``padding`` (``"SAME"``/``"VALID"``), ``stride_w``, ``stride_h``,
    ``dilation_w_factor``, ``dilation_h_factor``, ``fused_activation_function``
    (``"NONE"``, ``"RELU"``, ``"RELU6"``, ``"RELU_N1_TO_1"``, ``"TANH"``, ...).
    ``DEPTHWISE_CONV_2D``: the same plus ``depth_multiplier``.
    ``AVERAGE_POOL_2D`` / ``MAX_POOL_2D``: ``padding``, ``stride_w``, ``stride_h``,
    ``filter_width``, ``filter_height``, ``fused_activation_function``.
    ``FULLY_CONNECTED``: ``fused_activation_function``, ``weights_format``
    (``"DEFAULT"``), ``keep_num_dims``, ``asymmetric_quantize_inputs``.
    ``SOFTMAX``: ``beta``. ``RESHAPE``: ``new_shape`` (tuple, may be absent: the
    converter passes the shape as a second, constant input tensor instead).
    Other builtins: their flatbuffer option fields, snake_cased; ``{}`` when none.

Tensor layouts follow TFLite: activations NHWC; ``CONV_2D`` filters ``(out, kh, kw, in)``
quantised per output channel (axis 0); ``DEPTHWISE_CONV_2D`` filters
``(1, kh, kw, out)`` quantised along axis 3; ``FULLY_CONNECTED`` weights ``(out, in)``
along axis 0; biases int32 with ``scale = input_scale * weight_scale``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.errors import InputFileError

# TFLite TensorType code -> numpy dtype name (None: no numpy equivalent, data left raw).
_TENSOR_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("float32", "float32"),
    1: ("float16", "float16"),
    2: ("int32", "int32"),
    3: ("uint8", "uint8"),
    4: ("int64", "int64"),
    5: ("string", None),
    6: ("bool", "bool"),
    7: ("int16", "int16"),
    8: ("complex64", "complex64"),
    9: ("int8", "int8"),
    10: ("float64", "float64"),
    11: ("complex128", "complex128"),
    12: ("uint64", "uint64"),
    13: ("resource", None),
    14: ("variant", None),
    15: ("uint32", "uint32"),
    16: ("uint16", "uint16"),
    17: ("int4", None),
    18: ("bfloat16", None),
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_WEIGHTS_FORMAT = {0: "DEFAULT", 1: "SHUFFLED4x16INT8"}
_ENUM_OPTIONS = {
    "padding": _PADDING,
    "fused_activation_function": _ACTIVATION,
    "weights_format": _WEIGHTS_FORMAT,
}


def _schema() -> Any:
    # Imported lazily: the module is ~20k lines and only needed when a model is read.
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


@dataclass(frozen=True, eq=False)
class Quantization:
    """Affine quantisation ``real = scale * (q - zero_point)``, per tensor or per channel."""

    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int = 0

    def __post_init__(self) -> None:
        scales = np.asarray(self.scales, dtype=np.float32).reshape(-1)
        zero_points = np.asarray(self.zero_points, dtype=np.int64).reshape(-1)
        if scales.size == 0 or scales.shape != zero_points.shape:
            raise InputFileError(
                f"quantisation needs as many scales as zero points, got "
                f"{scales.size} and {zero_points.size}"
            )
        scales.setflags(write=False)
        zero_points.setflags(write=False)
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "zero_points", zero_points)

    @property
    def per_channel(self) -> bool:
        return int(self.scales.size) > 1

    @property
    def scale(self) -> float:
        """The per-tensor scale (raises if the tensor is quantised per channel)."""
        self._require_per_tensor()
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        """The per-tensor zero point (raises if the tensor is quantised per channel)."""
        self._require_per_tensor()
        return int(self.zero_points[0])

    def _require_per_tensor(self) -> None:
        if self.per_channel:
            raise ValueError("tensor is quantised per channel: use scales / zero_points")


@dataclass(frozen=True, eq=False)
class Tensor:
    """One tensor of a subgraph; ``data`` is set for constant tensors (weights, biases)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    data: np.ndarray | None
    quantization: Quantization | None
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor's values (element count times item size)."""
        if self.dtype == "int4":
            return (self.num_elements + 1) // 2
        itemsize = np.dtype(self.dtype).itemsize if _has_numpy_dtype(self.dtype) else 1
        return self.num_elements * itemsize


@dataclass(frozen=True)
class Operator:
    """One operator: builtin name, tensor indices in and out, and its options."""

    index: int
    op: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclass(frozen=True, eq=False)
class Subgraph:
    """Tensors and operators (in execution order) of one subgraph."""

    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]


@dataclass(frozen=True, eq=False)
class TFLiteModel:
    """A parsed ``.tflite`` model."""

    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    size_bytes: int

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def operator_names(self) -> tuple[str, ...]:
        return tuple(sorted({op.op for sg in self.subgraphs for op in sg.operators}))


def load_tflite(path: str | Path) -> TFLiteModel:
    """Read and parse a ``.tflite`` file (see :func:`read_tflite`)."""
    return read_tflite_file(path)[1]


def read_tflite_file(path: str | Path) -> tuple[bytes, TFLiteModel]:
    """The bytes of a ``.tflite`` file and their parse; an unreadable or corrupt file is
    one :class:`InputFileError` naming the path."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return data, read_tflite(data)
    except InputFileError as error:
        raise InputFileError(f"{path}: {error}") from None


def read_tflite(data: bytes | bytearray | memoryview) -> TFLiteModel:
    """Parse the bytes of a ``.tflite`` model.

    Raises
    ------
    InputFileError
        The bytes are not a well-formed TFLite flatbuffer (bad identifier, truncated,
        indices or buffer sizes out of range).
    """
    data = bytes(data)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputFileError("not a TFLite model (missing the 'TFL3' flatbuffer identifier)")
    fb = _schema()
    try:
        raw = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
        return _convert(raw, data)
    except InputFileError:
        raise
    except Exception as error:  # flatbuffers raises anything from struct.error to IndexError
        kind = type(error).__name__
        raise InputFileError(f"corrupt or truncated TFLite model ({kind}: {error})") from None


def _convert(raw: Any, data: bytes) -> TFLiteModel:
    buffers = list(raw.buffers or [])
    op_names = [_operator_name(code) for code in (raw.operatorCodes or [])]
    op_versions = [int(code.version or 1) for code in (raw.operatorCodes or [])]
    subgraphs = []
    for raw_sg in raw.subgraphs or []:
        tensors = tuple(
            _convert_tensor(i, t, buffers, data) for i, t in enumerate(raw_sg.tensors or [])
        )
        operators = []
        for i, raw_op in enumerate(raw_sg.operators or []):
            code = int(raw_op.opcodeIndex)
            if not 0 <= code < len(op_names):
                raise InputFileError(f"operator {i} uses unknown opcode index {code}")
            inputs = _ints(raw_op.inputs)
            outputs = _ints(raw_op.outputs)
            for t in inputs + outputs:
                if not -1 <= t < len(tensors):
                    raise InputFileError(f"operator {i} refers to missing tensor {t}")
            operators.append(
                Operator(
                    index=i,
                    op=op_names[code],
                    version=op_versions[code],
                    inputs=inputs,
                    outputs=outputs,
                    options=_options(raw_op.builtinOptions),
                )
            )
        sg_inputs, sg_outputs = _ints(raw_sg.inputs), _ints(raw_sg.outputs)
        for t in sg_inputs + sg_outputs:
            if not 0 <= t < len(tensors):
                raise InputFileError(f"subgraph input/output refers to missing tensor {t}")
        subgraphs.append(
            Subgraph(
                name=_text(raw_sg.name),
                tensors=tensors,
                operators=tuple(operators),
                inputs=sg_inputs,
                outputs=sg_outputs,
            )
        )
    if not subgraphs:
        raise InputFileError("TFLite model has no subgraphs")
    return TFLiteModel(
        version=int(raw.version),
        description=_text(raw.description),
        subgraphs=tuple(subgraphs),
        size_bytes=len(data),
    )


def _convert_tensor(index: int, raw: Any, buffers: list[Any], data: bytes) -> Tensor:
    name = _text(raw.name)
    shape = _ints(raw.shape)
    type_name, np_name = _TENSOR_TYPES.get(int(raw.type), (f"type{int(raw.type)}", None))
    buffer_index = int(raw.buffer)
    if not 0 <= buffer_index < max(len(buffers), 1):
        raise InputFileError(f"tensor {index} ({name}) refers to missing buffer {buffer_index}")
    values = _buffer_bytes(buffers[buffer_index], data) if buffers else b""
    array: np.ndarray | None = None
    if values:
        if np_name is None:
            array = np.frombuffer(values, dtype=np.uint8).copy()
        else:
            array = np.frombuffer(values, dtype=np.dtype(np_name).newbyteorder("<")).astype(np_name)
            expected = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if array.size != expected:
                raise InputFileError(
                    f"tensor {index} ({name}) has {array.size} values, shape {shape} "
                    f"needs {expected}"
                )
            array = array.reshape(shape)
        array.setflags(write=False)
    return Tensor(
        index=index,
        name=name,
        shape=shape,
        dtype=type_name,
        buffer=buffer_index,
        data=array,
        quantization=_quantization(raw.quantization),
        is_variable=bool(raw.isVariable),
    )


def _buffer_bytes(buffer: Any, data: bytes) -> bytes:
    # Buffers over 2 GB live after the flatbuffer and are addressed by offset/size.
    offset, size = int(buffer.offset or 0), int(buffer.size or 0)
    if offset > 1:
        if offset + size > len(data):
            raise InputFileError("buffer extends past the end of the file")
        return data[offset : offset + size]
    if buffer.data is None:
        return b""
    return np.asarray(buffer.data, dtype=np.uint8).tobytes()


def _quantization(raw: Any) -> Quantization | None:
    if raw is None or raw.scale is None or len(raw.scale) == 0:
        return None
    zero_points = raw.zeroPoint if raw.zeroPoint is not None else np.zeros(len(raw.scale))
    return Quantization(
        scales=np.asarray(raw.scale, dtype=np.float32),
        zero_points=np.asarray(zero_points, dtype=np.int64),
        quantized_dimension=int(raw.quantizedDimension),
    )


def _operator_name(code: Any) -> str:
    # Builtin codes >= 127 live in builtinCode; older ones in the deprecated int8 field.
    value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if value == 32:  # BuiltinOperator.CUSTOM
        return f"CUSTOM:{_text(code.customCode)}"
    return _builtin_names().get(value, f"BUILTIN_{value}")


_BUILTIN_NAMES: dict[int, str] = {}


def _builtin_names() -> dict[int, str]:
    if not _BUILTIN_NAMES:
        for key, value in vars(_schema().BuiltinOperator).items():
            if not key.startswith("_") and isinstance(value, int):
                _BUILTIN_NAMES[value] = key
    return _BUILTIN_NAMES


def _snake(name: str) -> str:
    # strideW -> stride_w, dilationWFactor -> dilation_w_factor
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _options(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    options: dict[str, Any] = {}
    for key, value in vars(raw).items():
        snake = _snake(key)
        if snake in _ENUM_OPTIONS and isinstance(value, int | np.integer):
            options[snake] = _ENUM_OPTIONS[snake].get(int(value), int(value))
        elif isinstance(value, bool | np.bool_):
            options[snake] = bool(value)
        elif isinstance(value, int | np.integer):
            options[snake] = int(value)
        elif isinstance(value, float | np.floating):
            options[snake] = float(value)
        elif isinstance(value, np.ndarray | list | tuple):
            options[snake] = tuple(np.asarray(value).tolist())
        elif isinstance(value, bytes | str):
            options[snake] = _text(value)
        # nested option tables (e.g. quant_spec) are not needed by any op we support
    return options


def _ints(values: Any) -> tuple[int, ...]:
    if values is None:
        return ()
    return tuple(int(v) for v in np.asarray(values).reshape(-1))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _has_numpy_dtype(name: str) -> bool:
    return any(np_name == name for _, np_name in _TENSOR_TYPES.values())
