"""The device's share of one federated round, the seeding rule, and the wire contract.

Pure numpy (no Flower, no TensorFlow): a simulated device, a Flower ClientApp, and the MQTT
device client all call :func:`run_local_round`, so the SAME numbers come out whatever the
transport.

Algorithms (``RoundPlan.algorithm``)
------------------------------------
``"online"`` (TinyReptile)
    ``k`` fresh samples arrive one at a time (``stream.sample(1, rng)`` k times); each gets
    one SGD step (batch 1, lr ``inner_lr``) and is dropped. RAM: in-place batch-1 SGD
    (params + one sample's activations + one sample), see :mod:`tinyfleet.device.learner`;
    a batch plan with ``batch_size == 1`` and SGD is costed the same way plus its stored set.
``"batch"`` (Reptile, FedAvg)
    ``support_size`` samples are drawn at once (``stream.sample(n, rng)``) and STORED; then
    ``epochs`` passes, each over a fresh permutation (``rng.permutation(n)``), in minibatches
    of ``batch_size`` (mean of per-sample gradients). Optimiser ``"sgd"`` (default: the
    same update rule as TinyReptile, so the comparison isolates online-vs-stored data) or
    ``"adam"`` with ``beta1 = 0`` as in openai/supervised-reptile's inner loop (only the
    second-moment buffer is kept, which the RAM accounting counts).

Seeding rule
------------
Every random number of device ``i`` in round ``r`` of a run with seed ``s`` comes from
``round_rng(s, i, r) = default_rng(SeedSequence([ROUND_TAG, s, i, r]))``; a device's task
(its sine wave, its classes) from ``device_task_rng(s, i, split)``; held-out few-shot
shots/queries from ``eval_rng(s, i)``; the initial head from ``initial_head_vector(spec,
s)``. Device indices are 0-based within their split.

Wire contract (Flower Message content; the MQTT gateway mirrors it)
-------------------------------------------------------------------
Request: ``ArrayRecord "arrays"`` holding ONE float32 array, the flat head vector theta
(:func:`tinyfleet.device.head.flatten` order), plus ``ConfigRecord "config"`` with the keys
in :data:`CONFIG_KEYS` (``RoundPlan.to_config`` + ``round``, ``device-index``, ``seed``).
Reply: ``ArrayRecord "arrays"`` holding ONE float32 array phi (same shape), plus
``MetricRecord "metrics"`` with the keys in :data:`METRIC_KEYS`
(:meth:`RoundStats.to_metrics`, which echoes ``device-index`` and ``round``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from tinyfleet.device.head import HeadSpec, MLPHead, flatten, init_params
from tinyfleet.device.learner import (
    minibatch_sgd_ram_bytes,
    online_sgd_ram_bytes,
    sample_bytes_for,
)
from tinyfleet.errors import UsageError

# -- wire contract -----------------------------------------------------------------------
ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"

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
SPLITS = {"train": 1, "heldout": 2}

ROUND_TAG = 0x524F554E  # "ROUN"
TASK_TAG = 0x5441534B  # "TASK"
EVAL_TAG = 0x4556414C  # "EVAL"

ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8
FLOAT_BYTES = 4


# -- seeding -----------------------------------------------------------------------------
def _check_nonneg(**values: int) -> None:
    for name, value in values.items():
        if int(value) < 0:
            raise UsageError(f"{name} must be >= 0, got {value}")


def round_rng(seed: int, device_index: int, server_round: int) -> np.random.Generator:
    """The random stream of device ``device_index`` in round ``server_round`` (1-based)."""
    _check_nonneg(seed=seed, device_index=device_index, server_round=server_round)
    return np.random.default_rng([ROUND_TAG, int(seed), int(device_index), int(server_round)])


def device_task_rng(seed: int, device_index: int, split: str) -> np.random.Generator:
    """The stream that makes device ``device_index``'s task in ``split`` (train/heldout)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    _check_nonneg(seed=seed, device_index=device_index)
    return np.random.default_rng([TASK_TAG, int(seed), SPLITS[split], int(device_index)])


def eval_rng(seed: int, device_index: int) -> np.random.Generator:
    """The stream of held-out device ``device_index``'s few-shot shots and query points."""
    _check_nonneg(seed=seed, device_index=device_index)
    return np.random.default_rng([EVAL_TAG, int(seed), int(device_index)])


INIT_TAG = 0x494E4954  # "INIT"


def initial_head_vector(spec: HeadSpec, seed: int) -> np.ndarray:
    """The run's starting head theta_0 (every strategy and transport starts here)."""
    _check_nonneg(seed=seed)
    return flatten(init_params(spec, np.random.default_rng([INIT_TAG, int(seed)])))


# -- plans and stats ---------------------------------------------------------------------
class SampleStream(Protocol):
    """A device's data stream, already mapped to head inputs (after any backbone)."""

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...


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

    def ram_bytes(self, spec: HeadSpec) -> int:
        """Peak RAM a device needs for this round (see :func:`round_ram_bytes`)."""
        return round_ram_bytes(spec, self)

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


# -- RAM accounting (engineer A's helpers in device/learner.py, one source of truth) ----
def round_ram_bytes(spec: HeadSpec, plan: RoundPlan) -> int:
    """Peak RAM a device needs for ``plan``: online = in-place batch-1 SGD (params +
    activations + one sample + arena); batch = params + grads (+ Adam's second moment)
    + the stored support set + a minibatch's activations + arena."""
    sample = sample_bytes_for(spec)
    if plan.algorithm == "online":
        return online_sgd_ram_bytes(spec, sample, plan.arena_bytes)
    if plan.batch_size == 1 and plan.optimizer == "sgd":
        # Batch-1 SGD over a stored set updates in place like the online learner: no
        # gradient buffer, only the stored samples on top.
        return online_sgd_ram_bytes(spec, plan.support_size * sample, plan.arena_bytes)
    # Adam with beta1 = 0 keeps ONE params-sized buffer (the second moment), which the
    # helper costs like momentum's single buffer.
    return minibatch_sgd_ram_bytes(
        spec,
        batch=min(plan.batch_size, plan.support_size),
        stored_samples=plan.support_size,
        sample_bytes=sample,
        arena_bytes=plan.arena_bytes,
        optimizer="momentum" if plan.optimizer == "adam" else "sgd",
    )


# -- the round ---------------------------------------------------------------------------
def run_local_round(
    head_vector: np.ndarray,
    spec: HeadSpec,
    stream: SampleStream,
    plan: RoundPlan,
    rng: np.random.Generator,
    *,
    macs_per_sample: int = 0,
) -> tuple[np.ndarray, RoundStats]:
    """Train from ``head_vector`` (theta) for one round; return ``(phi, stats)``.

    ``rng`` must be :func:`round_rng` of this device and round for reproducibility.
    ``macs_per_sample`` is the backbone's MACs per embedded sample (0 for no backbone).
    """
    theta = np.asarray(head_vector, dtype=np.float32)
    if theta.shape != (spec.num_params,):
        raise UsageError(f"expected {spec.num_params} head parameters, got shape {theta.shape}")
    head = MLPHead(spec, params=_unflatten_views(spec, theta.copy()))
    if plan.algorithm == "online":
        losses = [head.sgd_step(*_one_sample(stream, rng), plan.inner_lr) for _ in range(plan.k)]
        embedded = plan.k
    else:
        x, y = stream.sample(plan.support_size, rng)
        losses = _train_minibatches(head, x, y, plan, rng)
        embedded = plan.support_size
    phi = head.get_vector()
    payload = spec.num_params * FLOAT_BYTES
    stats = RoundStats(
        loss=float(np.mean(losses)),
        num_examples=plan.num_examples,
        grad_evals=plan.grad_evals,
        sgd_steps=plan.sgd_steps,
        ram_bytes=plan.ram_bytes(spec),
        macs=plan.grad_evals * spec.macs_sgd_step + embedded * int(macs_per_sample),
        bytes_down=payload,
        bytes_up=payload,
    )
    return phi, stats


def _unflatten_views(spec: HeadSpec, vector: np.ndarray) -> list[np.ndarray]:
    out, offset = [], 0
    for shape in spec.param_shapes():
        size = int(np.prod(shape))
        out.append(vector[offset : offset + size].reshape(shape))
        offset += size
    return out


def _one_sample(stream: SampleStream, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = stream.sample(1, rng)
    return np.asarray(x)[0], np.asarray(y)[0]


def _batch_grads(head: MLPHead, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Mean loss and mean per-sample gradient over a minibatch (float32)."""
    total_loss = 0.0
    total = [np.zeros_like(p) for p in head.params]
    for xi, yi in zip(x, y, strict=True):
        loss, grads = head.loss_and_grads(xi, yi)
        total_loss += loss
        for acc, g in zip(total, grads, strict=True):
            acc += g
    scale = np.float32(1.0 / len(x))
    return total_loss / len(x), [acc * scale for acc in total]


def _train_minibatches(
    head: MLPHead, x: np.ndarray, y: np.ndarray, plan: RoundPlan, rng: np.random.Generator
) -> list[float]:
    lr = np.float32(plan.inner_lr)
    second_moment = [np.zeros_like(p) for p in head.params] if plan.optimizer == "adam" else []
    losses: list[float] = []
    step = 0
    for _ in range(plan.epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), plan.batch_size):
            idx = order[start : start + plan.batch_size]
            loss, grads = _batch_grads(head, x[idx], y[idx])
            losses.append(loss)
            step += 1
            if plan.optimizer == "sgd":
                for p, g in zip(head.params, grads, strict=True):
                    p -= lr * g
            else:  # Adam with beta1 = 0 (openai/supervised-reptile's inner loop)
                correction = np.float32(np.sqrt(1.0 - ADAM_BETA2**step))
                for p, g, v in zip(head.params, grads, second_moment, strict=True):
                    v *= np.float32(ADAM_BETA2)
                    v += np.float32(1.0 - ADAM_BETA2) * g * g
                    p -= lr * correction * g / (np.sqrt(v) + np.float32(ADAM_EPS))
    return losses


# -- few-shot adaptation -----------------------------------------------------------------
def online_adaptation_curve(
    head_vector: np.ndarray,
    spec: HeadSpec,
    shots_x: np.ndarray,
    shots_y: np.ndarray,
    steps: int,
    lr: float,
    evaluate: Callable[[MLPHead], float],
) -> list[float]:
    """Adapt online from ``head_vector`` on the shots (step ``i`` uses shot ``i mod k``,
    batch 1); return ``evaluate(head)`` before the first step and after each step
    (``steps + 1`` values)."""
    if len(shots_x) < 1 or len(shots_x) != len(shots_y):
        raise UsageError("few-shot adaptation needs >= 1 shot with matching targets")
    if int(steps) < 0:
        raise UsageError(f"adaptation steps must be >= 0, got {steps}")
    head = MLPHead(spec, params=_unflatten_views(spec, np.array(head_vector, np.float32)))
    curve = [float(evaluate(head))]
    for step in range(int(steps)):
        i = step % len(shots_x)
        head.sgd_step(shots_x[i], shots_y[i], lr)
        curve.append(float(evaluate(head)))
    return curve


StreamForDevice = Callable[[int, int], SampleStream]


def run_configured_round(
    theta: np.ndarray,
    config: Mapping[str, Any],
    spec: HeadSpec,
    stream_for_device: StreamForDevice,
    *,
    macs_per_sample: int = 0,
    own_device_index: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One round as a task describes it: ``(phi, metrics)``, whatever the transport.

    ``config`` holds the wire contract's keys (``round``, ``device-index``, ``seed`` and the
    :class:`RoundPlan` keys). The stream is ``stream_for_device(seed, device_index)`` and
    the randomness :func:`round_rng` of that device and round, so the in-process ClientApp,
    an MQTT device and the firmware bridge compute the same numbers. ``own_device_index``,
    when set, refuses a task for another device (a device has only its own stream).
    """
    try:
        seed = int(config[KEY_SEED])
        device = int(config[KEY_DEVICE_INDEX])
        server_round = int(config[KEY_ROUND])
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"round config lacks or garbles {error}") from None
    if own_device_index is not None and device != own_device_index:
        raise UsageError(f"task for device index {device}, this is {own_device_index}")
    phi, stats = run_local_round(
        theta,
        spec,
        stream_for_device(seed, device),
        RoundPlan.from_config(config),
        round_rng(seed, device, server_round),
        macs_per_sample=macs_per_sample,
    )
    metrics: dict[str, Any] = dict(stats.to_metrics(device, server_round))
    return phi, metrics
