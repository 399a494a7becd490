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

What the reply carries (TinyMetaFed keys; absent = the defaults, i.e. a dense float32 phi,
so a device or firmware that does not know them is unaffected)
------------------------------------------------------------------------------------------
``upload`` = ``"phi"`` (default)
    The reply array is phi, dense float32.
``upload`` = ``"delta"``
    The reply array is the UPDATE ``phi - theta``. Only this mode may be sparse: a sparse
    array decodes to zeros where it has no entry, and a missing entry of an update means
    "no change", whereas a missing entry of phi would mean "parameter = 0".
``top-p`` (float in (0, 1], default 1.0)
    With ``upload = "delta"``: only the ``ceil(top_p * n)`` largest-magnitude entries of
    the update travel, as a sparse array (flat indices + values).
``upload-int8`` (bool, default false)
    The travelling values are int8 (affine, per array: scale + zero point).
``local-layers`` (int, default 0)
    Partial local reconstruction: the last ``local-layers`` layers (weights + biases, the
    tail of the flat vector) are the device's own. Each round they are rebuilt from the
    values in theta (the server never changes them): the first ``recon-steps`` samples of
    the round train only them (the shared layers frozen), the rest train all layers.
    Their entries are never uploaded (the update is zero there before Top-P).
``recon-steps`` (int, default 0)
    See ``local-layers``; at most ``k``.
``upload`` = ``"delta-theta-int8"``
    As ``"delta"`` (RoundPlan: ``upload="delta", theta_int8=True``; a value of ``upload``,
    not a key of its own, because a wire message holds at most 16 fields), but the
    device keeps theta only as int8 (``quantize_int8`` of the whole vector: 1 byte per
    parameter instead of 4) and forms the update against its dequantised copy ``base``:
    the kept entries carry ``phi - base``, int8 (a kept entry never encodes to zero: its
    value moves one step away from zero instead). The server, which knows theta and the
    same deterministic quantisation, adds ``base - theta`` back on the non-zero entries,
    so each kept entry is ``phi - theta`` up to the int8 step of the upload. Needs a
    sparse int8 update (``upload`` delta, ``upload-int8``, top-p < 1 or local layers).

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
KEY_UPLOAD = "upload"
KEY_TOP_P = "top-p"
KEY_UPLOAD_INT8 = "upload-int8"
KEY_LOCAL_LAYERS = "local-layers"
KEY_RECON_STEPS = "recon-steps"
#: ``upload`` value of a delta upload against an int8 copy of theta (see above).
UPLOAD_DELTA_THETA_INT8 = "delta-theta-int8"
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
    KEY_UPLOAD,
    KEY_TOP_P,
    KEY_UPLOAD_INT8,
    KEY_LOCAL_LAYERS,
    KEY_RECON_STEPS,
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
UPLOADS = ("phi", "delta")
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
    upload: str = "phi"
    top_p: float = 1.0
    upload_int8: bool = False
    local_layers: int = 0
    recon_steps: int = 0
    theta_int8: bool = False

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
        if self.upload not in UPLOADS:
            raise UsageError(f"unknown upload {self.upload!r}; choose from {UPLOADS}")
        if not (np.isfinite(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise UsageError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.upload == "phi" and (self.top_p < 1.0 or self.local_layers > 0):
            raise UsageError("top-p < 1 and local layers need upload 'delta' (see contract)")
        if int(self.local_layers) < 0 or int(self.recon_steps) < 0:
            raise UsageError("local-layers and recon-steps must be >= 0")
        if int(self.recon_steps) > 0 and (
            int(self.local_layers) == 0 or self.algorithm != "online" or self.recon_steps > self.k
        ):
            raise UsageError("recon-steps needs local layers, the online algorithm and <= k")
        if self.theta_int8 and not (
            self.upload == "delta"
            and self.upload_int8
            and (self.top_p < 1.0 or self.local_layers > 0)
        ):
            raise UsageError("theta-int8 needs a sparse int8 update (upload delta, top-p < 1)")

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

    @property
    def compressed(self) -> bool:
        """Whether the reply is anything but a dense float32 phi."""
        return self.upload != "phi" or self.upload_int8

    def to_config(self) -> dict[str, Any]:
        """The plan as kebab-case config entries (without round/device-index/seed).

        The TinyMetaFed keys appear only when they differ from their defaults, so the
        tasks of the other strategies are byte-for-byte what they were."""
        extra: dict[str, Any] = {}
        if self.upload != "phi":
            extra[KEY_UPLOAD] = UPLOAD_DELTA_THETA_INT8 if self.theta_int8 else self.upload
        if self.top_p != 1.0:
            extra[KEY_TOP_P] = float(self.top_p)
        if self.upload_int8:
            extra[KEY_UPLOAD_INT8] = True
        if self.local_layers:
            extra[KEY_LOCAL_LAYERS] = int(self.local_layers)
        if self.recon_steps:
            extra[KEY_RECON_STEPS] = int(self.recon_steps)
        base: dict[str, Any] = {
            KEY_ALGORITHM: self.algorithm,
            KEY_INNER_LR: float(self.inner_lr),
            KEY_K: int(self.k),
            KEY_SUPPORT_SIZE: int(self.support_size),
            KEY_EPOCHS: int(self.epochs),
            KEY_BATCH_SIZE: int(self.batch_size),
            KEY_OPTIMIZER: self.optimizer,
            KEY_ARENA_BYTES: int(self.arena_bytes),
        }
        return base | extra

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RoundPlan:
        """Inverse of :meth:`to_config`; missing optional keys take the defaults."""
        try:
            defaults = cls(algorithm="online", inner_lr=0.01)
            upload = str(config.get(KEY_UPLOAD, "phi"))
            theta_int8 = upload == UPLOAD_DELTA_THETA_INT8
            return cls(
                algorithm=str(config[KEY_ALGORITHM]),
                inner_lr=float(config[KEY_INNER_LR]),
                k=int(config.get(KEY_K, defaults.k)),
                support_size=int(config.get(KEY_SUPPORT_SIZE, defaults.support_size)),
                epochs=int(config.get(KEY_EPOCHS, defaults.epochs)),
                batch_size=int(config.get(KEY_BATCH_SIZE, defaults.batch_size)),
                optimizer=str(config.get(KEY_OPTIMIZER, defaults.optimizer)),
                arena_bytes=int(config.get(KEY_ARENA_BYTES, 0)),
                upload="delta" if theta_int8 else upload,
                top_p=float(config.get(KEY_TOP_P, 1.0)),
                upload_int8=bool(config.get(KEY_UPLOAD_INT8, False)),
                local_layers=int(config.get(KEY_LOCAL_LAYERS, 0)),
                recon_steps=int(config.get(KEY_RECON_STEPS, 0)),
                theta_int8=theta_int8,
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
