"""The round contract: what a task asks of a device and what its reply reports.

A TRAIN task carries ONE float32 array (the flat head vector theta) and the config keys
below: ``round``, ``device-index``, ``seed`` and the :class:`RoundPlan` keys. The REPLY
carries phi (same name and shape; possibly int8 or sparse, see
:mod:`tinyfleet.device.wire.compress`) and the metric keys below
(:meth:`RoundStats.to_metrics`, which echoes ``device-index`` and ``round``).

Algorithms (``RoundPlan.algorithm``)
------------------------------------
``"online"`` (TinyReptile)
    ``k`` fresh samples arrive one at a time; each gets one SGD step (batch 1, lr
    ``inner_lr``) and is dropped.
``"batch"`` (Reptile, FedAvg)
    ``support_size`` samples are drawn at once and STORED; then ``epochs`` passes, each
    over a fresh permutation, in minibatches of ``batch_size`` (mean of per-sample
    gradients), with optimiser ``"sgd"`` or ``"adam"`` (beta1 = 0, as in
    openai/supervised-reptile's inner loop).

Imports nothing of tinyfleet's but the root error class: the C firmware mirrors it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinyfleet.errors import UsageError

# -- config keys a device understands ---------------------------------------------------
KEY_ROUND = "round"
KEY_DEVICE_INDEX = "device-index"
KEY_SEED = "seed"
KEY_ALGORITHM = "algorithm"
KEY_INNER_LR = "inner-lr"
KEY_K = "k"
KEY_SUPPORT_SIZE = "support-size"
KEY_EPOCHS = "epochs"
KEY_BATCH_SIZE = "batch-size"
KEY_OPTIMIZER = "optimizer"
KEY_ARENA_BYTES = "arena-bytes"
CONFIG_KEYS = (
    KEY_ROUND,
    KEY_DEVICE_INDEX,
    KEY_SEED,
    KEY_ALGORITHM,
    KEY_INNER_LR,
    KEY_K,
    KEY_SUPPORT_SIZE,
    KEY_EPOCHS,
    KEY_BATCH_SIZE,
    KEY_OPTIMIZER,
    KEY_ARENA_BYTES,
)

METRIC_LOSS = "loss"
METRIC_NUM_EXAMPLES = "num-examples"
METRIC_GRAD_EVALS = "grad-evals"
METRIC_SGD_STEPS = "sgd-steps"
METRIC_RAM_BYTES = "ram-bytes"
METRIC_MACS = "macs"
METRIC_BYTES_DOWN = "bytes-down"
METRIC_BYTES_UP = "bytes-up"
METRIC_DEVICE_INDEX = "device-index"  # echoed from the config
METRIC_ROUND = "round"  # echoed from the config
METRIC_KEYS = (
    METRIC_DEVICE_INDEX,
    METRIC_ROUND,
    METRIC_LOSS,
    METRIC_NUM_EXAMPLES,
    METRIC_GRAD_EVALS,
    METRIC_SGD_STEPS,
    METRIC_RAM_BYTES,
    METRIC_MACS,
    METRIC_BYTES_DOWN,
    METRIC_BYTES_UP,
)

ALGORITHMS = ("online", "batch")
OPTIMIZERS = ("sgd", "adam")

#: ERROR reply codes: the task could not be decoded or did not fit this device / the
#: round work raised.
ERROR_CODE_BAD_TASK = 1
ERROR_CODE_FAILED = 2

FLOAT_BYTES = 4


@dataclass(frozen=True)
class RoundPlan:
    """What a device does in one round (see the module docstring)."""

    algorithm: str
    inner_lr: float
    k: int = 10
    support_size: int = 10
    epochs: int = 1
    batch_size: int = 10
    optimizer: str = "sgd"
    arena_bytes: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise UsageError(f"unknown algorithm {self.algorithm!r}; choose from {ALGORITHMS}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if not (np.isfinite(self.inner_lr) and self.inner_lr > 0):
            raise UsageError(f"inner learning rate must be > 0, got {self.inner_lr}")
        for name in ("k", "support_size", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.arena_bytes) < 0:
            raise UsageError(f"arena bytes must be >= 0, got {self.arena_bytes}")

    @property
    def grad_evals(self) -> int:
        """Per-sample gradient evaluations of one round (a minibatch of B counts B)."""
        if self.algorithm == "online":
            return int(self.k)
        return int(self.epochs) * int(self.support_size)

    @property
    def sgd_steps(self) -> int:
        if self.algorithm == "online":
            return int(self.k)
        return int(self.epochs) * -(-int(self.support_size) // int(self.batch_size))

    @property
    def num_examples(self) -> int:
        return int(self.k) if self.algorithm == "online" else int(self.support_size)

    def to_config(self) -> dict[str, Any]:
        """The plan as kebab-case config entries (without round/device-index/seed)."""
        return {
            KEY_ALGORITHM: self.algorithm,
            KEY_INNER_LR: float(self.inner_lr),
            KEY_K: int(self.k),
            KEY_SUPPORT_SIZE: int(self.support_size),
            KEY_EPOCHS: int(self.epochs),
            KEY_BATCH_SIZE: int(self.batch_size),
            KEY_OPTIMIZER: self.optimizer,
            KEY_ARENA_BYTES: int(self.arena_bytes),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RoundPlan:
        """Inverse of :meth:`to_config`; missing optional keys take the defaults."""
        try:
            defaults = cls(algorithm="online", inner_lr=0.01)
            return cls(
                algorithm=str(config[KEY_ALGORITHM]),
                inner_lr=float(config[KEY_INNER_LR]),
                k=int(config.get(KEY_K, defaults.k)),
                support_size=int(config.get(KEY_SUPPORT_SIZE, defaults.support_size)),
                epochs=int(config.get(KEY_EPOCHS, defaults.epochs)),
                batch_size=int(config.get(KEY_BATCH_SIZE, defaults.batch_size)),
                optimizer=str(config.get(KEY_OPTIMIZER, defaults.optimizer)),
                arena_bytes=int(config.get(KEY_ARENA_BYTES, 0)),
            )
        except KeyError as missing:
            raise UsageError(f"round config lacks {missing}") from None


@dataclass(frozen=True)
class RoundStats:
    """What a device reports about its round (besides phi)."""

    loss: float
    num_examples: int
    grad_evals: int
    sgd_steps: int
    ram_bytes: int
    macs: int
    bytes_down: int
    bytes_up: int

    def to_metrics(self, device_index: int, server_round: int) -> dict[str, int | float]:
        """The reply's MetricRecord entries: the stats (kebab-case) plus the echoed
        ``device-index`` and ``round`` (the server orders and matches replies by them)."""
        metrics: dict[str, int | float] = {
            METRIC_DEVICE_INDEX: int(device_index),
            METRIC_ROUND: int(server_round),
        }
        metrics.update({key.replace("_", "-"): value for key, value in asdict(self).items()})
        return metrics
