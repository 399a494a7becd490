"""Bounded updates and robust aggregates: what a reply may do to the model.

A device's update ``delta = phi - theta`` is accepted only if::

    ||delta||_2 <= max_update_ratio * max(||theta||_2, min_norm)

(``max_update_ratio`` = None turns the bound off). The default, 2.0, is far above what
honest devices produce: measured with ``python -m benchmarks.bench_faults --measure``
the largest honest ratio over whole default runs was 0.14 on sine (FedAvg; TinyReptile 0.012)
and 0.50 on digits (see docs/reliability.md), so an honest run never trips it while a
1e30 reply, or a 1000x honest update, is refused.

For multi-device rounds the accepted ``phi`` can be combined by the plain mean (the
default, bit-identical to earlier releases), the coordinate-wise median, or the
coordinate-wise trimmed mean (drop ``trim_fraction`` of the values at each end).
"""

from __future__ import annotations

import numpy as np

from tinyfleet.errors import UsageError

AGGREGATES = ("mean", "median", "trimmed-mean")
DEFAULT_MAX_UPDATE_RATIO = 2.0
DEFAULT_MIN_NORM = 1.0
DEFAULT_TRIM_FRACTION = 0.2


def update_ratio(
    phi: np.ndarray, theta: np.ndarray, min_norm: float = DEFAULT_MIN_NORM, *, delta: bool = False
) -> float:
    """``||phi - theta|| / max(||theta||, min_norm)``, in float64 (inf if it overflows);
    with ``delta`` ``phi`` is the update itself: ``||phi|| / max(||theta||, min_norm)``."""
    # np.sum of squares, not np.linalg.norm: BLAS threads made norm ~50x slower on a
    # loaded host (benchmarks/bench_faults.py).
    wide = theta.astype(np.float64)
    step = phi.astype(np.float64) if delta else phi.astype(np.float64) - wide
    with np.errstate(over="ignore", invalid="ignore"):
        size = float(np.sqrt(np.sum(step * step)))
    reference = max(float(np.sqrt(np.sum(wide * wide))), float(min_norm))
    return size / reference if np.isfinite(size) else float("inf")


def check_bound(max_update_ratio: float | None, min_norm: float) -> None:
    """Raise :class:`UsageError` (one line) for an update bound that cannot work."""
    if max_update_ratio is not None and not (
        np.isfinite(max_update_ratio) and max_update_ratio > 0
    ):
        raise UsageError(f"max_update_ratio must be > 0 or None, got {max_update_ratio}")
    if not (np.isfinite(min_norm) and min_norm > 0):
        raise UsageError(f"min_norm must be > 0, got {min_norm}")


def check_settings(
    max_update_ratio: float | None, min_norm: float, aggregate: str, trim_fraction: float
) -> None:
    """Raise :class:`UsageError` (one line) for settings that cannot work."""
    check_bound(max_update_ratio, min_norm)
    if aggregate not in AGGREGATES:
        raise UsageError(f"unknown aggregate {aggregate!r}; choose from {', '.join(AGGREGATES)}")
    if not 0.0 <= float(trim_fraction) < 0.5:
        raise UsageError(f"trim_fraction must be in [0, 0.5), got {trim_fraction}")


def plain_mean(vectors: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean in float32 (Reptile's default aggregate)."""
    return (np.sum(np.stack(vectors), axis=0) / np.float32(len(vectors))).astype(np.float32)


def robust_mean(vectors: list[np.ndarray], aggregate: str, trim_fraction: float) -> np.ndarray:
    """Coordinate-wise ``median`` or ``trimmed-mean`` of ``vectors`` (float32).

    ``trimmed-mean`` drops ``floor(trim_fraction * n)`` values at each end of every
    coordinate (at least one each when ``n >= 3`` and ``trim_fraction > 0``).
    """
    stacked = np.stack(vectors).astype(np.float64)
    if aggregate == "median":
        return np.median(stacked, axis=0).astype(np.float32)
    if aggregate != "trimmed-mean":
        raise UsageError(f"robust_mean does not do {aggregate!r}")
    n = stacked.shape[0]
    cut = int(np.floor(trim_fraction * n))
    if cut == 0 and trim_fraction > 0 and n >= 3:
        cut = 1
    ordered = np.sort(stacked, axis=0)
    kept = ordered[cut : n - cut] if n - 2 * cut > 0 else ordered
    return kept.mean(axis=0).astype(np.float32)
