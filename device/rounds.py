"""The device's share of one federated round: whatever the transport, the same numbers.

Pure numpy (no Flower, no TensorFlow): the simulated device's ClientApp, the MQTT device
client and the serial bridge (firmware) all call :func:`run_configured_round`, which
reads the task's config (:mod:`tinyfleet.device.wire.contract`), draws the device's
samples from its stream with :func:`round_rng`, and hands them to a *trainer*: the Python
head (:func:`train_head`, the default) or the firmware over a serial link.

Randomness: every random number of device ``i`` in round ``r`` of a run with seed ``s``
comes from ``round_rng(s, i, r) = default_rng([ROUND_TAG, s, i, r])`` (0-based device
index, 1-based round).

RAM: ``online`` = in-place batch-1 SGD (params + one sample's activations + one sample,
see :mod:`tinyfleet.device.learner`); a batch plan with ``batch_size == 1`` and SGD is
costed the same way plus its stored set; larger minibatches accumulate per-sample
gradients one sample at a time (a gradient buffer, not a minibatch of activations).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from tinyfleet.device.head import HeadSpec, MLPHead, unflatten
from tinyfleet.device.learner import (
    minibatch_sgd_ram_bytes,
    online_sgd_ram_bytes,
    sample_bytes_for,
)
from tinyfleet.device.wire.contract import (
    FLOAT_BYTES,
    KEY_DEVICE_INDEX,
    KEY_ROUND,
    KEY_SEED,
    RoundPlan,
    RoundStats,
)
from tinyfleet.errors import UsageError

ROUND_TAG = 0x524F554E  # "ROUN"
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


def check_nonneg(**values: int) -> None:
    """Refuse negative seeds, indices and rounds (a seed sequence needs them >= 0)."""
    for name, value in values.items():
        if int(value) < 0:
            raise UsageError(f"{name} must be >= 0, got {value}")


def round_rng(seed: int, device_index: int, server_round: int) -> np.random.Generator:
    """The random stream of device ``device_index`` in round ``server_round`` (1-based)."""
    check_nonneg(seed=seed, device_index=device_index, server_round=server_round)
    return np.random.default_rng([ROUND_TAG, int(seed), int(device_index), int(server_round)])


class SampleStream(Protocol):
    """A device's data stream, already mapped to head inputs (after any backbone)."""

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...


StreamForDevice = Callable[[int, int], SampleStream]

#: ``trainer(theta, plan, stream, rng) -> (phi, mean loss)``: the round's learning.
Trainer = Callable[
    [np.ndarray, RoundPlan, SampleStream, np.random.Generator], tuple[np.ndarray, float]
]


def round_ram_bytes(spec: HeadSpec, plan: RoundPlan) -> int:
    """Peak RAM a device needs for ``plan`` (see the module docstring)."""
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


def round_stats(spec: HeadSpec, plan: RoundPlan, loss: float, macs_per_sample: int) -> RoundStats:
    """What a device reports about a round of ``plan`` whose mean loss was ``loss``."""
    payload = spec.num_params * FLOAT_BYTES
    return RoundStats(
        loss=float(loss),
        num_examples=plan.num_examples,
        grad_evals=plan.grad_evals,
        sgd_steps=plan.sgd_steps,
        ram_bytes=round_ram_bytes(spec, plan),
        macs=plan.grad_evals * spec.macs_sgd_step + plan.num_examples * int(macs_per_sample),
        bytes_down=payload,
        bytes_up=payload,
    )


def python_trainer(spec: HeadSpec) -> Trainer:
    """The Python head as a :data:`Trainer` (what a simulated or Python device runs)."""

    def train(
        theta: np.ndarray, plan: RoundPlan, stream: SampleStream, rng: np.random.Generator
    ) -> tuple[np.ndarray, float]:
        head = MLPHead(spec, params=unflatten(spec, theta))
        if plan.algorithm == "online":
            losses = [
                head.sgd_step(*_one_sample(stream, rng), plan.inner_lr) for _ in range(plan.k)
            ]
        else:
            x, y = stream.sample(plan.support_size, rng)
            losses = _train_minibatches(head, x, y, plan, rng)
        return head.get_vector(), float(np.mean(losses))

    return train


def run_local_round(
    head_vector: np.ndarray,
    spec: HeadSpec,
    stream: SampleStream,
    plan: RoundPlan,
    rng: np.random.Generator,
    *,
    macs_per_sample: int = 0,
    trainer: Trainer | None = None,
) -> tuple[np.ndarray, RoundStats]:
    """Train from ``head_vector`` (theta) for one round; return ``(phi, stats)``.

    ``rng`` must be :func:`round_rng` of this device and round for reproducibility.
    ``macs_per_sample`` is the backbone's MACs per embedded sample (0 for no backbone).
    """
    theta = np.asarray(head_vector, dtype=np.float32)
    if theta.shape != (spec.num_params,):
        raise UsageError(f"expected {spec.num_params} head parameters, got shape {theta.shape}")
    phi, loss = (trainer or python_trainer(spec))(theta, plan, stream, rng)
    return phi, round_stats(spec, plan, loss, macs_per_sample)


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


def run_configured_round(
    theta: np.ndarray,
    config: Mapping[str, Any],
    spec: HeadSpec,
    stream_for_device: StreamForDevice,
    *,
    macs_per_sample: int = 0,
    own_device_index: int | None = None,
    trainer: Trainer | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One round as a task describes it: ``(phi, metrics)``, whatever the transport.

    ``config`` holds the contract's keys (``round``, ``device-index``, ``seed`` and the
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
        trainer=trainer,
    )
    metrics: dict[str, Any] = dict(stats.to_metrics(device, server_round))
    return phi, metrics
