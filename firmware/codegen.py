"""Generate C99 for one int8 ``.tflite`` model: const weights, a static arena, kernel calls.

``generate_model(model)`` lowers the main subgraph of a parsed model
(:mod:`tinyfleet.device.tooling.tflite_model`) to two files, ``tinyfleet_model.h`` and
``tinyfleet_model.c``, which call only the kernels the model uses (``tinyfleet_kernels.h``).
Quantisation
parameters are computed here, on the host, exactly as TFLM's Prepare() does
(:mod:`tinyfleet.firmware.quantize`), so the generated code needs no floating point.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.device.tooling.tflite_model import (
    Operator,
    Subgraph,
    Tensor,
    TFLiteModel,
    read_tflite,
)
from tinyfleet.errors import InputFileError
from tinyfleet.firmware.quantize import (
    activation_range,
    per_channel_multipliers,
    window_padding,
)
from tinyfleet.firmware.targets import MAX_DEVICE_RAM
from tinyfleet.firmware.validate import (
    SUPPORTED_OPERATORS,
    UnsupportedModelError,
    scratch_id,
    validate_model,
)

__all__ = ["SUPPORTED_OPERATORS", "GeneratedModel", "UnsupportedModelError", "generate_model"]


@dataclass(frozen=True)
class GeneratedModel:
    """The generated sources and the figures the report needs."""

    header: str
    source: str
    arena_bytes: int
    weight_bytes: int
    operators: tuple[str, ...]
    input_size: int
    output_size: int

    def write(self, directory: str | Path) -> list[Path]:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "tinyfleet_model.h", out / "tinyfleet_model.c"]
        paths[0].write_text(self.header)
        paths[1].write_text(self.source)
        return paths


@dataclass
class _Emitter:
    """Collects const arrays and statements while the graph is lowered."""

    arrays: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    weight_bytes: int = 0

    def array(self, ctype: str, name: str, values: Sequence[int] | np.ndarray) -> str:
        flat = [int(v) for v in np.asarray(values).reshape(-1)]
        lines = []
        for i in range(0, len(flat), 16):
            lines.append("    " + ", ".join(str(v) for v in flat[i : i + 16]) + ",")
        body = "\n".join(lines)
        self.arrays.append(f"static const {ctype} {name}[{len(flat)}] = {{\n{body}\n}};")
        self.weight_bytes += len(flat) * np.dtype(ctype.replace("_t", "")).itemsize
        return name


def _fail(op: Operator, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"operator {op.index} ({op.op}): {why}")


def _shape4(tensor: Tensor, op: Operator) -> tuple[int, int, int, int]:
    if len(tensor.shape) != 4:
        raise _fail(op, f"expected a 4-D NHWC tensor, got shape {list(tensor.shape)}")
    n, h, w, c = (int(v) for v in tensor.shape)
    if n != 1:
        raise _fail(op, f"batch must be 1, got {n} (export with keras.Input(batch_size=1))")
    return n, h, w, c


# Which layers the DSP kernels cover (their early returns in src/tinyfleet_kernels_dsp.c):
# those call the kernels' ``_fast`` entry points, so that a DSP build links no reference
# loop it never runs. A layer wrongly marked covered fails loudly (TINYFLEET_ERR_UNSUPPORTED
# from the invoke), never silently: the differential tests run every model on both sets.
def dsp_covers_conv(kh: int, kw: int, has_scratch: bool) -> bool:
    """CONV_2D: im2col into the planned scratch, or a 1x1 filter read in place (a 1x1
    filter never gets padding, SAME or VALID)."""
    return has_scratch or (kh == 1 and kw == 1)


def dsp_covers_depthwise(depth_multiplier: int, options: dict[str, Any], channels: int) -> bool:
    """DEPTHWISE_CONV_2D: depth multiplier 1, no dilation, four channels per word."""
    dilation = (options.get("dilation_h_factor", 1), options.get("dilation_w_factor", 1))
    plain = depth_multiplier == 1 and tuple(int(d) for d in dilation) == (1, 1)
    return plain and channels % 4 == 0


def dsp_covers_max_pool(channels: int) -> bool:
    """MAX_POOL_2D: four channels per word."""
    return channels % 4 == 0


def _fast(covered: bool) -> str:
    return "_fast" if covered else ""


def _per_tensor(tensor: Tensor, op: Operator) -> tuple[float, int]:
    q = tensor.quantization
    if q is None or q.per_channel:
        raise _fail(op, f"tensor {tensor.name!r} needs per-tensor quantisation")
    return q.scale, q.zero_point


def _check_int8(tensors: Sequence[Tensor], op: Operator) -> None:
    for t in tensors:
        if t.dtype != "int8":
            raise _fail(op, f"tensor {t.name!r} is {t.dtype}; only int8 activations are supported")


class _Lowering:
    def __init__(self, graph: Subgraph, emit: _Emitter, arena: str) -> None:
        self.graph = graph
        self.emit = emit
        self.arena = arena
        self.offsets: dict[int, int] = {}

    def ptr(self, index: int) -> str:
        return f"({self.arena} + {self.offsets[index]})"

    def tensors(self, op: Operator) -> tuple[list[Tensor | None], Tensor]:
        ins = [self.graph.tensor(i) if i >= 0 else None for i in op.inputs]
        return ins, self.graph.tensor(op.outputs[0])

    def requant(self, op: Operator, inp: Tensor, filt: Tensor, out: Tensor, channels: int) -> str:
        in_scale, in_zp = _per_tensor(inp, op)
        out_scale, out_zp = _per_tensor(out, op)
        fq = filt.quantization
        if fq is None:
            raise _fail(op, "weights are not quantised")
        if np.any(fq.zero_points != 0):
            raise _fail(op, "weights must be symmetric (zero point 0)")
        mult, shift = per_channel_multipliers(in_scale, fq.scales, out_scale, channels)
        act = str(op.options.get("fused_activation_function", "NONE"))
        try:
            act_min, act_max = activation_range(act, out_scale, out_zp)
        except ValueError as error:
            raise _fail(op, str(error)) from None
        k = op.index
        self.emit.array("int32_t", f"op{k}_mult", mult)
        self.emit.array("int32_t", f"op{k}_shift", shift)
        self.emit.statements.append(
            f"    static const tinyfleet_requant op{k}_q = {{{-in_zp}, {out_zp}, {act_min}, {act_max}, "
            f"op{k}_mult, op{k}_shift}};"
        )
        return f"&op{k}_q"

    def bias(self, op: Operator, bias: Tensor | None, channels: int) -> str:
        if bias is None:
            return "NULL"
        if bias.data is None or bias.dtype != "int32" or bias.num_elements != channels:
            raise _fail(op, "bias must be a constant int32 vector, one per output channel")
        return self.emit.array("int32_t", f"op{op.index}_bias", bias.data)

    def weights(self, op: Operator, filt: Tensor | None) -> str:
        if filt is None or filt.data is None or filt.dtype != "int8":
            raise _fail(op, "weights must be a constant int8 tensor")
        return self.emit.array("int8_t", f"op{op.index}_filter", filt.data)

    def window(self, op: Operator, inp: Tensor, out: Tensor, kh: int, kw: int) -> str:
        _, ih, iw, ic = _shape4(inp, op)
        _, oh, ow, oc = _shape4(out, op)
        o = op.options
        sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
        dh, dw = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
        padding = str(o.get("padding", "VALID"))
        try:
            ph = window_padding(padding, ih, kh, sh, dh, oh)
            pw = window_padding(padding, iw, kw, sw, dw, ow)
        except ValueError as error:
            raise _fail(op, str(error)) from None
        k = op.index
        self.emit.statements.append(
            f"    static const tinyfleet_window op{k}_w = {{{ih}, {iw}, {ic}, {oh}, {ow}, {oc}, "
            f"{kh}, {kw}, {sh}, {sw}, {dh}, {dw}, {ph}, {pw}}};"
        )
        return f"&op{k}_w"

    def call(self, text: str) -> None:
        self.emit.statements.append(f"    st = {text};")
        self.emit.statements.append("    if (st != TINYFLEET_OK) {\n        return st;\n    }")

    def lower(self, op: Operator) -> None:
        ins, out = self.tensors(op)
        if op.op not in SUPPORTED_OPERATORS:
            raise UnsupportedModelError(
                f"unsupported operator {op.op} (operator {op.index}); the firmware supports "
                + ", ".join(SUPPORTED_OPERATORS)
            )
        inp = ins[0]
        if inp is None:
            raise _fail(op, "missing input")
        _check_int8([inp, out], op)
        k = op.index
        self.emit.statements.append(f"    /* operator {k}: {op.op} -> {out.name} */")
        if op.op == "CONV_2D":
            filt = ins[1]
            if filt is None or len(filt.shape) != 4:
                raise _fail(op, "CONV_2D needs a 4-D OHWI filter")
            oc, kh, kw, fic = (int(v) for v in filt.shape)
            if fic != _shape4(inp, op)[3]:
                raise _fail(op, "grouped convolutions are not supported")
            w = self.window(op, inp, out, kh, kw)
            q = self.requant(op, inp, filt, out, oc)
            f = self.weights(op, filt)
            b = self.bias(op, ins[2] if len(ins) > 2 else None, oc)
            sid = scratch_id(op.index)
            scratch = self.ptr(sid) if sid in self.offsets else "NULL"
            fn = "tinyfleet_conv2d_s8" + _fast(dsp_covers_conv(kh, kw, sid in self.offsets))
            self.call(
                f"{fn}({w}, {q}, {self.ptr(inp.index)}, {f}, {b}, "
                f"{self.ptr(out.index)}, {scratch})"
            )
        elif op.op == "DEPTHWISE_CONV_2D":
            filt = ins[1]
            if filt is None or len(filt.shape) != 4:
                raise _fail(op, "DEPTHWISE_CONV_2D needs a 1HWC filter")
            _, kh, kw, oc = (int(v) for v in filt.shape)
            ic = _shape4(inp, op)[3]
            if oc % ic:
                raise _fail(op, "output channels must be a multiple of input channels")
            w = self.window(op, inp, out, kh, kw)
            q = self.requant(op, inp, filt, out, oc)
            f = self.weights(op, filt)
            b = self.bias(op, ins[2] if len(ins) > 2 else None, oc)
            fn = "tinyfleet_depthwise_conv2d_s8" + _fast(
                dsp_covers_depthwise(oc // ic, op.options, oc)
            )
            self.call(
                f"{fn}({w}, {oc // ic}, {q}, {self.ptr(inp.index)}, {f}, {b}, "
                f"{self.ptr(out.index)})"
            )
        elif op.op == "FULLY_CONNECTED":
            filt = ins[1]
            if filt is None or len(filt.shape) != 2:
                raise _fail(op, "FULLY_CONNECTED needs 2-D weights")
            n_out, n_in = (int(v) for v in filt.shape)
            if inp.num_elements != n_in or out.num_elements != n_out:
                raise _fail(op, "only batch 1 is supported")
            q = self.requant(op, inp, filt, out, n_out)
            f = self.weights(op, filt)
            b = self.bias(op, ins[2] if len(ins) > 2 else None, n_out)
            self.call(
                f"tinyfleet_fully_connected_s8({n_in}, {n_out}, {q}, {self.ptr(inp.index)}, {f}, {b}, "
                f"{self.ptr(out.index)})"
            )
        elif op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            in_q, out_q = _per_tensor(inp, op), _per_tensor(out, op)
            if in_q != out_q:
                raise _fail(op, "pooling must keep the input's quantisation")
            o = op.options
            w = self.window(op, inp, out, int(o["filter_height"]), int(o["filter_width"]))
            act = str(o.get("fused_activation_function", "NONE"))
            try:
                lo, hi = activation_range(act, out_q[0], out_q[1])
            except ValueError as error:
                raise _fail(op, str(error)) from None
            fn = (
                "tinyfleet_average_pool2d_s8"
                if op.op == "AVERAGE_POOL_2D"
                else "tinyfleet_max_pool2d_s8" + _fast(dsp_covers_max_pool(_shape4(inp, op)[3]))
            )
            self.call(f"{fn}({w}, {lo}, {hi}, {self.ptr(inp.index)}, {self.ptr(out.index)})")
        else:  # RESHAPE
            if inp.num_elements != out.num_elements:
                raise _fail(op, "RESHAPE changes the element count")
            self.call(
                f"tinyfleet_reshape_s8({out.num_elements}, {self.ptr(inp.index)}, {self.ptr(out.index)})"
            )


def _c_identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text)


def generate_model(
    model: TFLiteModel, name: str = "model", sha256: str = "", ram_bytes: int = MAX_DEVICE_RAM
) -> GeneratedModel:
    """Validate (:func:`~tinyfleet.firmware.validate.validate_model`), then lower the
    main subgraph to C; raises :class:`UnsupportedModelError` before writing anything.
    ``ram_bytes`` is the target's RAM, which the arena must fit (default: the largest
    device target's; a host build passes its own)."""
    plan = validate_model(model, ram_bytes)
    graph = model.main
    inp, out = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    in_scale, in_zp = _per_tensor(inp, graph.operators[0])
    out_scale, out_zp = _per_tensor(out, graph.operators[-1])

    emit = _Emitter()
    lowering = _Lowering(graph, emit, "tinyfleet_model_arena")
    lowering.offsets = plan.offsets
    for op in graph.operators:
        lowering.lower(op)

    guard = "TINYFLEET_MODEL_H"
    ops = tuple(sorted({op.op for op in graph.operators}))
    header = f"""/* Generated by `tinyfleet firmware generate` from {name}: do not edit.
 * sha256 {sha256 or "unknown"}
 * operators: {", ".join(ops)} */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#include "tinyfleet_status.h"

#define TINYFLEET_MODEL_NAME "{_c_identifier(name)}"
#define TINYFLEET_MODEL_INPUT_SIZE {inp.num_elements}
#define TINYFLEET_MODEL_OUTPUT_SIZE {out.num_elements}
#define TINYFLEET_MODEL_ARENA_BYTES {plan.size}
#define TINYFLEET_MODEL_INPUT_SCALE {float(in_scale)!r}f
#define TINYFLEET_MODEL_INPUT_ZERO_POINT ({in_zp})
#define TINYFLEET_MODEL_OUTPUT_SCALE {float(out_scale)!r}f
#define TINYFLEET_MODEL_OUTPUT_ZERO_POINT ({out_zp})

/* Run one inference: input and output are caller-owned int8 buffers of
 * TINYFLEET_MODEL_INPUT_SIZE and TINYFLEET_MODEL_OUTPUT_SIZE bytes. Not re-entrant (one arena). */
tinyfleet_status tinyfleet_model_invoke(const int8_t *input, int8_t *output);

#endif
"""
    in_off, out_off = plan.offsets[inp.index], plan.offsets[out.index]
    body = "\n".join(emit.statements)
    arrays = "\n\n".join(emit.arrays)
    source = f"""/* Generated by `tinyfleet firmware generate` from {name}: do not edit. */
#include "tinyfleet_model.h"

#include <stddef.h>
#include <string.h>

#include "tinyfleet_kernels.h"

/* Activations share one static arena; offsets come from a liveness plan. */
static int8_t tinyfleet_model_arena[TINYFLEET_MODEL_ARENA_BYTES] __attribute__((aligned(16)));

{arrays}

tinyfleet_status tinyfleet_model_invoke(const int8_t *input, int8_t *output)
{{
    tinyfleet_status st = TINYFLEET_OK;
    if (!input || !output) {{
        return TINYFLEET_ERR_NULL;
    }}
    memcpy(tinyfleet_model_arena + {in_off}, input, TINYFLEET_MODEL_INPUT_SIZE);
{body}
    memcpy(output, tinyfleet_model_arena + {out_off}, TINYFLEET_MODEL_OUTPUT_SIZE);
    return st;
}}
"""
    return GeneratedModel(
        header=header,
        source=source,
        arena_bytes=plan.size,
        weight_bytes=emit.weight_bytes,
        operators=ops,
        input_size=inp.num_elements,
        output_size=out.num_elements,
    )


def generate_model_file(path: str | Path, ram_bytes: int = MAX_DEVICE_RAM) -> GeneratedModel:
    """Read ``path`` (a .tflite), validate and generate, in memory (nothing written)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from None
    model = read_tflite(data)
    sha256 = hashlib.sha256(data).hexdigest()
    return generate_model(model, name=path.name, sha256=sha256, ram_bytes=ram_bytes)


def generate_from_file(
    path: str | Path, out_dir: str | Path, ram_bytes: int = MAX_DEVICE_RAM
) -> GeneratedModel:
    """Read ``path`` (a .tflite), generate, and write ``tinyfleet_model.[ch]`` into
    ``out_dir``; an invalid model raises before anything is written."""
    generated = generate_model_file(path, ram_bytes)
    generated.write(out_dir)
    return generated


def generate_passthrough(size: int, name: str = "no-backbone") -> GeneratedModel:
    """A stand-in model for float-head devices (no backbone): output = input, int8."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    header = f"""/* Generated by tinyfleet: {name} (no backbone; the head reads features directly). */
#ifndef TINYFLEET_MODEL_H
#define TINYFLEET_MODEL_H

#include <stdint.h>

#include "tinyfleet_status.h"

#define TINYFLEET_MODEL_NAME "{_c_identifier(name)}"
#define TINYFLEET_MODEL_INPUT_SIZE {size}
#define TINYFLEET_MODEL_OUTPUT_SIZE {size}
#define TINYFLEET_MODEL_ARENA_BYTES 0
#define TINYFLEET_MODEL_INPUT_SCALE 1.0f
#define TINYFLEET_MODEL_INPUT_ZERO_POINT (0)
#define TINYFLEET_MODEL_OUTPUT_SCALE 1.0f
#define TINYFLEET_MODEL_OUTPUT_ZERO_POINT (0)

tinyfleet_status tinyfleet_model_invoke(const int8_t *input, int8_t *output);

#endif
"""
    source = """/* Generated by tinyfleet: pass-through model. */
#include "tinyfleet_model.h"

#include <string.h>

tinyfleet_status tinyfleet_model_invoke(const int8_t *input, int8_t *output)
{
    if (!input || !output) {
        return TINYFLEET_ERR_NULL;
    }
    memmove(output, input, TINYFLEET_MODEL_INPUT_SIZE);
    return TINYFLEET_OK;
}
"""
    return GeneratedModel(header, source, 0, 0, (), size, size)
