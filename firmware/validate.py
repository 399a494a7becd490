"""Check a parsed int8 model completely before any C is generated from it.

The generated C trusts every number it is given: a filter whose channel count
disagrees with its output tensor makes the conv kernel read past a const array, a
stride near 2**31 overflows the padding arithmetic. So every fact the lowering and
the kernels rely on is checked here first, the checks TFLM's ``Prepare()`` makes and
more: tensor shapes against each other and against TFLM's output-size formula,
int8 activations with per-tensor quantisation, symmetric per-channel weights with one
scale per output channel, finite positive scales (a requantisation multiplier must be
positive), options present and in range, every intermediate size and index within
int32, and the arena plan within the target's RAM. The first inconsistency raises
:class:`ModelCheckError` with one line naming the operator and the fact.

Only facts read from the file are checked; a model that passes is one the lowering
in :mod:`tinyfleet.firmware.codegen` turns into C without any other exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tinyfleet.device.tooling.tflite_model import Operator, Subgraph, Tensor, TFLiteModel
from tinyfleet.errors import InputFileError
from tinyfleet.firmware.arena import ArenaPlan, Buffer, plan_arena, tensor_lifetimes
from tinyfleet.firmware.quantize import activation_range, window_out_size

INT32_MAX = (1 << 31) - 1
SUPPORTED_OPERATORS = (
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "RESHAPE",
)
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
FLOAT_IO_HINT = "export with int8 input and output"


class ModelCheckError(InputFileError):
    """The model is inconsistent or uses something the firmware cannot run."""


# The generator's historical name for the same error; kept so callers need not change.
UnsupportedModelError = ModelCheckError


def _fail(op: Operator, why: str) -> ModelCheckError:
    return ModelCheckError(f"operator {op.index} ({op.op}): {why}")


def _fits(value: int) -> bool:
    return 0 <= value <= INT32_MAX


def _check_tensor_shape(t: Tensor) -> None:
    if any(d < 1 for d in t.shape):
        raise ModelCheckError(f"tensor {t.index} ({t.name!r}) has shape {list(t.shape)}")
    # Python ints: the product cannot wrap the way an int64 np.prod would.
    if not _fits(math.prod(t.shape)):
        raise ModelCheckError(f"tensor {t.index} ({t.name!r}) has more than 2**31-1 elements")


def _scale_zp(t: Tensor, what: str) -> tuple[float, int]:
    q = t.quantization
    if q is None or q.per_channel:
        raise ModelCheckError(f"{what} tensor {t.index} ({t.name!r}) needs per-tensor quantisation")
    scale, zp = float(q.scales[0]), int(q.zero_points[0])
    if not (math.isfinite(scale) and scale > 0):
        raise ModelCheckError(f"{what} tensor {t.index} ({t.name!r}) has scale {scale}")
    if not -128 <= zp <= 127:
        raise ModelCheckError(f"{what} tensor {t.index} ({t.name!r}) has zero point {zp}")
    return scale, zp


def _activation(t: Tensor, op: Operator) -> tuple[float, int]:
    if t.dtype != "int8":
        raise _fail(op, f"tensor {t.index} ({t.name!r}) is {t.dtype}; activations must be int8")
    if t.is_constant:
        raise _fail(op, f"tensor {t.index} ({t.name!r}) is constant; expected an activation")
    _check_tensor_shape(t)
    try:
        return _scale_zp(t, "activation")
    except ModelCheckError as error:
        raise _fail(op, str(error)) from None


def _shape4(t: Tensor, op: Operator) -> tuple[int, int, int]:
    if len(t.shape) != 4:
        raise _fail(op, f"expected a 4-D NHWC tensor, got shape {list(t.shape)}")
    if t.shape[0] != 1:
        raise _fail(
            op, f"batch must be 1, got {t.shape[0]} (export with keras.Input(batch_size=1))"
        )
    return t.shape[1], t.shape[2], t.shape[3]


def _int_option(op: Operator, key: str, default: int | None = None) -> int:
    value = op.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(op, f"option {key} is missing or not an integer")
    if not 1 <= value <= INT32_MAX:
        raise _fail(op, f"option {key} = {value} is out of range")
    return value


def _text_option(op: Operator, key: str, allowed: Sequence[str], default: str) -> str:
    value = op.options.get(key, default)
    if value not in allowed:
        raise _fail(op, f"option {key} = {value} is not supported (expected {', '.join(allowed)})")
    return str(value)


def _weights(t: Tensor | None, op: Operator, dtype: str, rank: int) -> Tensor:
    kind = "weights" if dtype == "int8" else "bias"
    if t is None or t.data is None or t.dtype != dtype:
        raise _fail(op, f"{kind} must be a constant {dtype} tensor")
    if len(t.shape) != rank:
        raise _fail(op, f"{kind} must be {rank}-D, got shape {list(t.shape)}")
    _check_tensor_shape(t)
    if t.data.size != math.prod(t.shape):
        raise _fail(op, f"{kind} hold {t.data.size} values for shape {list(t.shape)}")
    return t


def _filter_quant(filt: Tensor, op: Operator, channels: int, axis: int, in_scale: float,
                  out_scale: float) -> None:  # fmt: skip
    q = filt.quantization
    if q is None:
        raise _fail(op, "weights are not quantised")
    if q.scales.size not in (1, channels):
        raise _fail(op, f"{q.scales.size} weight scales for {channels} output channels")
    if q.per_channel and q.quantized_dimension != axis:
        raise _fail(op, f"weights quantised along axis {q.quantized_dimension}, expected {axis}")
    if np.any(q.zero_points != 0):
        raise _fail(op, "weights must be symmetric (zero point 0)")
    scales = q.scales.astype(np.float64)
    if not np.all(np.isfinite(scales) & (scales > 0)):
        raise _fail(op, "weight scales must be finite and positive")
    # The requantisation multiplier in_scale * w_scale / out_scale must be a finite
    # positive double: QuantizeMultiplier's frexp cannot represent anything else.
    effective = float(np.float32(in_scale)) * scales / float(np.float32(out_scale))
    if not np.all(np.isfinite(effective) & (effective > 0)):
        raise _fail(op, "requantisation multiplier is not a finite positive number")


def _bias(ins: Sequence[Tensor | None], op: Operator, channels: int) -> None:
    bias = ins[2] if len(ins) > 2 else None
    if bias is None:
        return
    _weights(bias, op, "int32", len(bias.shape) or 1)
    if bias.num_elements != channels:
        raise _fail(op, f"bias has {bias.num_elements} values for {channels} output channels")


def _window(op: Operator, inp: Tensor, out: Tensor, kh: int, kw: int) -> None:
    ih, iw, _ = _shape4(inp, op)
    oh, ow, _ = _shape4(out, op)
    padding = _text_option(op, "padding", ("SAME", "VALID"), "VALID")
    sh, sw = _int_option(op, "stride_h", 1), _int_option(op, "stride_w", 1)
    pooling = op.op.endswith("POOL_2D")
    dh = 1 if pooling else _int_option(op, "dilation_h_factor", 1)
    dw = 1 if pooling else _int_option(op, "dilation_w_factor", 1)
    for axis, i, k, s, d, o in (("height", ih, kh, sh, dh, oh), ("width", iw, kw, sw, dw, ow)):
        extent = (k - 1) * d + 1
        # every index the C kernels form is below (o-1)*s + extent + the padding
        if not _fits((o - 1) * s + extent + i):
            raise _fail(op, f"window {axis} arithmetic overflows int32")
        expected = window_out_size(padding, i, k, s, d)
        if expected < 1:
            raise _fail(op, f"{padding} window of {extent} does not fit input {axis} {i}")
        if o != expected:
            raise _fail(op, f"output {axis} {o}, but {padding} padding gives {expected}")


def _check_op(op: Operator, graph: Subgraph) -> None:
    if op.op not in SUPPORTED_OPERATORS:
        raise ModelCheckError(
            f"unsupported operator {op.op} (operator {op.index}); the firmware supports "
            + ", ".join(SUPPORTED_OPERATORS)
        )
    if len(op.outputs) != 1 or op.outputs[0] < 0:
        raise _fail(op, f"expected one output tensor, got {len(op.outputs)}")
    ins = [graph.tensors[i] if i >= 0 else None for i in op.inputs]
    out = graph.tensors[op.outputs[0]]
    inp = ins[0] if ins else None
    if inp is None:
        raise _fail(op, "missing input")
    in_scale, in_zp = _activation(inp, op)
    out_scale, out_zp = _activation(out, op)
    if op.op != "RESHAPE":
        act = _text_option(op, "fused_activation_function", ACTIVATIONS, "NONE")
        try:  # a tiny output scale puts 6.0 / scale beyond float32: no clamp exists
            activation_range(act, out_scale, out_zp)
        except (ValueError, OverflowError):
            raise _fail(op, f"{act} cannot be represented at output scale {out_scale}") from None
    max_inputs = {"RESHAPE": 2, "AVERAGE_POOL_2D": 1, "MAX_POOL_2D": 1}.get(op.op, 3)
    if len(ins) > max_inputs:
        raise _fail(op, f"{len(ins)} inputs, expected at most {max_inputs}")
    if op.op == "CONV_2D":
        filt = _weights(ins[1] if len(ins) > 1 else None, op, "int8", 4)
        oc, kh, kw, fic = filt.shape
        if fic != _shape4(inp, op)[2]:
            raise _fail(op, f"filter expects {fic} input channels, input has {inp.shape[3]}")
        if _shape4(out, op)[2] != oc:
            raise _fail(op, f"output has {out.shape[3]} channels, filters give {oc}")
        _window(op, inp, out, kh, kw)
        _filter_quant(filt, op, oc, 0, in_scale, out_scale)
        _bias(ins, op, oc)
    elif op.op == "DEPTHWISE_CONV_2D":
        filt = _weights(ins[1] if len(ins) > 1 else None, op, "int8", 4)
        one, kh, kw, oc = filt.shape
        ic = _shape4(inp, op)[2]
        if one != 1 or oc % ic:
            raise _fail(op, f"filter {list(filt.shape)} does not fit {ic} input channels")
        if _shape4(out, op)[2] != oc:
            raise _fail(op, f"output has {out.shape[3]} channels, filters give {oc}")
        _window(op, inp, out, kh, kw)
        _filter_quant(filt, op, oc, 3, in_scale, out_scale)
        _bias(ins, op, oc)
    elif op.op == "FULLY_CONNECTED":
        filt = _weights(ins[1] if len(ins) > 1 else None, op, "int8", 2)
        n_out, n_in = filt.shape
        if inp.num_elements != n_in or out.num_elements != n_out:
            raise _fail(op, f"weights {n_out}x{n_in} do not fit input {list(inp.shape)} "
                        f"and output {list(out.shape)} (batch 1 only)")  # fmt: skip
        _text_option(op, "weights_format", ("DEFAULT",), "DEFAULT")
        _filter_quant(filt, op, n_out, 0, in_scale, out_scale)
        _bias(ins, op, n_out)
    elif op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        if (in_scale, in_zp) != (out_scale, out_zp):
            raise _fail(op, "pooling must keep the input's quantisation")
        if _shape4(inp, op)[2] != _shape4(out, op)[2]:
            raise _fail(op, "pooling must keep the channel count")
        fh, fw = _int_option(op, "filter_height"), _int_option(op, "filter_width")
        _window(op, inp, out, fh, fw)
    else:  # RESHAPE: the bytes stay the same, so only the element count matters
        if inp.num_elements != out.num_elements:
            raise _fail(op, f"RESHAPE {list(inp.shape)} -> {list(out.shape)} changes the count")
        if (in_scale, in_zp) != (out_scale, out_zp):
            raise _fail(op, "RESHAPE must keep the quantisation")


def _check_graph_io(graph: Subgraph, names: set[str]) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelCheckError("model must have exactly one input and one output tensor")
    for role, index in (("input", graph.inputs[0]), ("output", graph.outputs[0])):
        t = graph.tensors[index]
        if t.dtype != "int8" or names & {"QUANTIZE", "DEQUANTIZE"}:
            raise ModelCheckError(
                f"model {role} {t.name!r} is {t.dtype}"
                + (
                    " (the model quantises inside: QUANTIZE/DEQUANTIZE)"
                    if t.dtype == "int8"
                    else ""
                )
                + f"; {FLOAT_IO_HINT}"
            )
        _check_tensor_shape(t)
        _scale_zp(t, f"model {role}")


def _check_dataflow(graph: Subgraph) -> None:
    """Each activation read was written before (or is the model input); each written once."""
    written = {graph.inputs[0]}
    for op in graph.operators:
        if len(op.outputs) != 1 or op.outputs[0] < 0:
            raise _fail(op, f"expected one output tensor, got {len(op.outputs)}")
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_constant and t not in written:
                raise _fail(op, f"reads tensor {t} before any operator writes it")
        out = op.outputs[0]
        if out in written:
            raise _fail(op, f"writes tensor {out}, which is already written")
        written.add(out)
    if graph.outputs[0] not in written or graph.outputs[0] == graph.inputs[0]:
        raise ModelCheckError("no operator writes the model output")


def validate_model(model: TFLiteModel, ram_bytes: int = INT32_MAX) -> ArenaPlan:
    """Check everything; return the arena plan. Raises :class:`ModelCheckError`.

    ``ram_bytes`` is the target's RAM: the arena must fit in it (the rest of the
    firmware needs RAM too, so this is a necessary condition, the linker the final one).
    """
    if len(model.subgraphs) != 1:
        raise ModelCheckError(f"model has {len(model.subgraphs)} subgraphs; expected 1")
    graph = model.main
    names = {op.op for op in graph.operators}
    if not graph.operators:
        raise ModelCheckError("model has no operators")
    _check_graph_io(graph, names)
    unsupported = sorted(names - set(SUPPORTED_OPERATORS))
    if unsupported:
        raise ModelCheckError(
            f"unsupported operator {', '.join(unsupported)}; the firmware supports "
            + ", ".join(SUPPORTED_OPERATORS)
        )
    _check_dataflow(graph)  # structure first: the per-operator checks index by it
    for op in graph.operators:
        _check_op(op, graph)
    buffers = tensor_lifetimes(graph)
    for op in graph.operators:
        size = scratch_bytes(op, graph)
        if size:  # live only while its operator runs: it fills gaps between tensors
            buffers.append(Buffer(scratch_id(op.index), size, op.index, op.index))
    plan = plan_arena(buffers)
    if not _fits(plan.size) or plan.size > ram_bytes:
        raise ModelCheckError(
            f"tensor arena of {plan.size} bytes does not fit the target's {ram_bytes} bytes of RAM"
        )
    return plan


def scratch_id(op_index: int) -> int:
    """Arena-plan id of an operator's scratch buffer (tensor ids are >= 0)."""
    return -(op_index + 1)


def scratch_bytes(op: Operator, graph: Subgraph) -> int:
    """im2col scratch of a CONV_2D for the DSP kernels: two columns of kh*kw*in_c
    bytes (2x2 output blocking); 1x1 convolutions read the input in place."""
    if op.op != "CONV_2D":
        return 0
    _, kh, kw, ic = graph.tensors[op.inputs[1]].shape
    return 0 if kh == kw == 1 else 2 * kh * kw * ic


def check_head_input(backbone_outputs: int, head_input: int) -> None:
    """The head's first layer must take exactly the backbone's output features."""
    if backbone_outputs != head_input:
        raise ModelCheckError(
            f"head input size {head_input} does not match the backbone's {backbone_outputs} "
            f"output features (use --head-sizes {backbone_outputs},...)"
        )
