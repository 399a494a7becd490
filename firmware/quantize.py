"""TFLite Micro's quantisation arithmetic, reproduced on the host for the generator.

Everything here mirrors TFLM's C++ exactly (that is what makes the generated kernels
bit-exact): multipliers from float64 products, ``QuantizeMultiplier``'s
``frexp``/round-half-away-from-zero, activation ranges from float32 division, and
``ComputePaddingWithOffset`` for SAME/VALID windows.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN = -128
INT8_MAX = 127


def round_half_away(value: float) -> int:
    """C's ``round``/``roundf``: halves go away from zero (Python's ``round`` does not)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLM's ``QuantizeMultiplier``: ``real = q * 2**(shift - 31)``, ``q`` in [2**30, 2**31).

    Returns ``(quantized_multiplier, shift)`` with TFLM's sign convention (positive
    shift = left shift).
    """
    if real_multiplier < 0:
        raise ValueError(f"negative requantisation multiplier {real_multiplier}")
    if real_multiplier == 0.0:
        return 0, 0
    significand, shift = math.frexp(real_multiplier)
    q_fixed = round_half_away(significand * float(1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


def per_channel_multipliers(
    input_scale: float, filter_scales: np.ndarray, output_scale: float, channels: int
) -> tuple[list[int], list[int]]:
    """Multipliers for each output channel: ``in * filter[c] / out`` in float64."""
    scales = np.asarray(filter_scales, dtype=np.float32).reshape(-1)
    if scales.size == 1:
        scales = np.repeat(scales, channels)
    if scales.size != channels:
        raise ValueError(f"{scales.size} filter scales for {channels} output channels")
    multipliers, shifts = [], []
    for scale in scales:
        effective = float(np.float32(input_scale)) * float(scale) / float(np.float32(output_scale))
        m, s = quantize_multiplier(effective)
        multipliers.append(m)
        shifts.append(s)
    return multipliers, shifts


def activation_range(
    activation: str, output_scale: float, output_zero_point: int
) -> tuple[int, int]:
    """TFLM's ``CalculateActivationRangeQuantized`` for int8 outputs."""

    def quantize(value: float) -> int:
        ratio = np.float32(value) / np.float32(output_scale)  # float32, as in C++
        return output_zero_point + round_half_away(float(ratio))

    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    raise ValueError(f"fused activation {activation} is not supported")


def window_padding(
    padding: str, in_size: int, filter_size: int, stride: int, dilation: int, out_size: int
) -> int:
    """Leading padding of one spatial axis (TFLM's ``ComputePaddingWithOffset``)."""
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"unknown padding {padding}")
    effective = (filter_size - 1) * dilation + 1
    total = (out_size - 1) * stride + effective - in_size
    return max(total, 0) // 2


def window_out_size(
    padding: str, in_size: int, filter_size: int, stride: int, dilation: int
) -> int:
    """TFLM's ``ComputeOutSize``."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride
