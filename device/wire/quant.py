"""Int8 quantisation, one function per rounding rule (numpy only).

``quantize_half_away``: ``round`` as C's ``roundf`` (halves away from zero), computed in
float32 exactly as the firmware does: the int8 backbone's input path.
``quantize_half_even``: numpy's ``np.round`` (halves to even): the wire's int8 upload
compression, whose bytes the committed test vectors fix.
"""

from __future__ import annotations

import numpy as np


def round_half_away(values: np.ndarray) -> np.ndarray:
    """C's ``roundf`` on float32 values: halves go away from zero."""
    v = np.asarray(values, dtype=np.float32)
    return np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))


def quantize_half_away(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``clamp(round_half_away(x / scale) + zero_point, -128, 127)`` in float32."""
    v = np.asarray(values, dtype=np.float32) / np.float32(scale)
    return np.clip(round_half_away(v) + np.float32(zero_point), -128, 127).astype(np.int8)


def quantize_half_even(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``clamp(np.round(x / scale) + zero_point, -128, 127)`` (halves to even)."""
    x = np.asarray(values, dtype=np.float32)
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def dequantize(q_values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Int8 -> float32: ``(q - zero_point) * scale`` in float32."""
    return (np.asarray(q_values).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
