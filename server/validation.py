"""The checks a reply's parameters pass before they may touch the model, and a
strategy's run settings before its first round.

Used by the strategies (every transport) and by the MQTT gateway (which rejects a bad
reply before it becomes a Flower Message at all).
"""

from __future__ import annotations

import numpy as np

from tinyfleet.errors import UsageError


def update_problem(phi: np.ndarray, expected_shape: tuple[int, ...]) -> str | None:
    """Why ``phi`` (a device's returned parameters) cannot be applied, or None.

    Refused: another shape, another dtype than float32, or any NaN/Inf.
    """
    if phi.shape != tuple(expected_shape) or phi.dtype != np.float32:
        return f"{phi.dtype} {phi.shape}, expected float32 {tuple(expected_shape)}"
    if not np.all(np.isfinite(phi)):
        return "NaN or Inf values"
    return None


def check_run_settings(
    num_devices: int, clients_per_round: int, num_rounds: int, beta0: float
) -> None:
    """Raise :class:`UsageError` for a fleet, round count or outer step a run cannot use."""
    if int(num_devices) < 1:
        raise UsageError(f"the fleet needs >= 1 device, got {num_devices}")
    if int(clients_per_round) < 1:
        raise UsageError(f"clients per round must be >= 1, got {clients_per_round}")
    if int(num_rounds) < 1:
        raise UsageError(f"rounds must be >= 1, got {num_rounds}")
    if not (np.isfinite(beta0) and beta0 > 0):
        raise UsageError(f"beta0 must be > 0, got {beta0}")
