"""Array constructors: dense float32, int8-quantised, and Top-P% sparse wire arrays."""

from __future__ import annotations

import math

import numpy as np

from tinyfleet.device.wire.errors import CodecError
from tinyfleet.device.wire.quant import quantize_half_even
from tinyfleet.device.wire.types import DType, WireArray


def float32_array(name: str, values: np.ndarray) -> WireArray:
    """A dense float32 wire array (copied, C order)."""
    arr = np.ascontiguousarray(values, dtype=np.float32)
    return WireArray(name, tuple(int(d) for d in arr.shape), DType.FLOAT32, arr.ravel().copy())


def quantize_int8(values: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Affine int8 quantisation over ``[min(x, 0), max(x, 0)]``; returns ``(q, scale, zp)``.

    Non-finite inputs raise :class:`CodecError` (they cannot be represented in int8).
    """
    x = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise CodecError("cannot int8-quantise NaN or Inf values")
    lo = float(min(float(x.min(initial=0.0)), 0.0))
    hi = float(max(float(x.max(initial=0.0)), 0.0))
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    # A range of a few subnormals underflows to 0: keep the scale a positive normal float.
    scale = max(scale, np.finfo(np.float32).tiny)
    zero_point = int(np.clip(round(-128.0 - lo / float(scale)), -128, 127))
    q = quantize_half_even(x, float(scale), zero_point)
    return q, float(scale), zero_point


def int8_array(name: str, values: np.ndarray) -> WireArray:
    """Quantise ``values`` to an int8 wire array."""
    x = np.asarray(values, dtype=np.float32)
    q, scale, zp = quantize_int8(x)
    return WireArray(name, tuple(int(d) for d in x.shape), DType.INT8, q.ravel(), scale, zp)


def sparse_top_p(
    name: str, values: np.ndarray, fraction: float, *, int8: bool = False
) -> WireArray:
    """Keep the ``ceil(fraction * size)`` largest-magnitude entries (Top-P%), sparse.

    Ties are broken by position (stable), so the choice is deterministic.
    """
    if not 0.0 < fraction <= 1.0:
        raise CodecError(f"top-p fraction must be in (0, 1], got {fraction}")
    x = np.asarray(values, dtype=np.float32)
    flat = x.ravel()
    keep = max(1, math.ceil(fraction * flat.size)) if flat.size else 0
    order = np.argsort(-np.abs(flat), kind="stable")[:keep]
    idx = np.sort(order).astype(np.uint32)
    shape = tuple(int(d) for d in x.shape)
    if int8:
        q, scale, zp = quantize_int8(flat[idx])
        return WireArray(name, shape, DType.INT8, q, scale, zp, idx)
    return WireArray(name, shape, DType.FLOAT32, flat[idx].copy(), indices=idx)
