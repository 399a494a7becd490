"""Baselines a few-shot classifier must beat, computed on the held-out episodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def majority_rate(labels: Sequence[np.ndarray]) -> float:
    """Mean over devices of the share of each device's most frequent label: the accuracy
    of guessing one constant class per device, knowing the query labels (an upper bound
    for any constant guess)."""
    rates = [np.bincount(np.asarray(y, np.int64)).max() / len(y) for y in labels if len(y)]
    return float(np.mean(rates)) if rates else float("nan")


def constant_guess_baseline(metric: str, episodes: Sequence[Any]) -> dict[str, float]:
    """``{"majority_class_rate": ...}`` over the episodes' query sets (classification)."""
    if metric != "accuracy":
        return {}
    return {"majority_class_rate": majority_rate([ep.query_y for ep in episodes])}
