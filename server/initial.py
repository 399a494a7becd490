"""The run's starting head theta_0: every strategy and transport starts here."""

from __future__ import annotations

import numpy as np

from tinyfleet.device.head import HeadSpec, flatten, init_params
from tinyfleet.device.rounds import check_nonneg

INIT_TAG = 0x494E4954  # "INIT"


def initial_head_vector(spec: HeadSpec, seed: int) -> np.ndarray:
    """Glorot-uniform weights, zero biases, from ``default_rng([INIT_TAG, seed])``."""
    check_nonneg(seed=seed)
    return flatten(init_params(spec, np.random.default_rng([INIT_TAG, int(seed)])))
