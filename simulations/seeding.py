"""The simulation's seeding rules: where a simulated device's task and shots come from.

A device's task (its sine wave, its classes) comes from ``device_task_rng(s, i, split)``
(splits: ``train`` devices take part in rounds, ``heldout`` devices are the test set of
few-shot evaluation, ``validation`` devices -- disjoint from both -- are what the tuner
selects settings on); few-shot shots and queries from ``eval_rng(s, i)`` (held-out) or
``eval_rng(s, i, "validation")``. Device indices are 0-based
within their split. (A round's randomness is the device's own:
:func:`tinyfleet.device.rounds.round_rng`.)
"""

from __future__ import annotations

import numpy as np

from tinyfleet.device.rounds import check_nonneg
from tinyfleet.errors import UsageError

SPLITS = {"train": 1, "heldout": 2, "validation": 3}
TASK_TAG = 0x5441534B  # "TASK"
EVAL_TAG = 0x4556414C  # "EVAL"


def device_task_rng(seed: int, device_index: int, split: str) -> np.random.Generator:
    """The stream that makes device ``device_index``'s task in ``split`` (train/heldout)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    check_nonneg(seed=seed, device_index=device_index)
    return np.random.default_rng([TASK_TAG, int(seed), SPLITS[split], int(device_index)])


def eval_rng(seed: int, device_index: int, split: str = "heldout") -> np.random.Generator:
    """The stream of an evaluation device's few-shot shots and query points (held-out
    devices: the original rule, unchanged; validation devices: their own stream)."""
    check_nonneg(seed=seed, device_index=device_index)
    if split == "heldout":
        return np.random.default_rng([EVAL_TAG, int(seed), int(device_index)])
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    return np.random.default_rng([EVAL_TAG, int(seed), int(device_index), SPLITS[split]])
