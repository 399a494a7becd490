"""The one check a reply's parameters pass before they may touch the model.

Used by the strategies (every transport) and by the MQTT gateway (which rejects a bad
reply before it becomes a Flower Message at all).
"""

from __future__ import annotations

import numpy as np


def update_problem(phi: np.ndarray, expected_shape: tuple[int, ...]) -> str | None:
    """Why ``phi`` (a device's returned parameters) cannot be applied, or None.

    Refused: another shape, another dtype than float32, or any NaN/Inf.
    """
    if phi.shape != tuple(expected_shape) or phi.dtype != np.float32:
        return f"{phi.dtype} {phi.shape}, expected float32 {tuple(expected_shape)}"
    if not np.all(np.isfinite(phi)):
        return "NaN or Inf values"
    return None
