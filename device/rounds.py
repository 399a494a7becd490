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
A plan that uploads the update ``phi - theta`` (TinyMetaFed) also keeps theta's shared
entries (float32) beside phi, and stages the kept entries' indices and values. Given the round's encoded task and reply sizes, the
message buffers (:func:`~tinyfleet.device.learner.link_buffer_bytes`: the whole task
received, the reply and its serial frame) are added, alike for every strategy.

Reply: :func:`run_reply_round` = the round, then :func:`upload_array` (phi, or the Top-P%
/ int8 update) and the encoded message sizes as ``bytes-down`` / ``bytes-up``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from tinyfleet.device.head import HeadSpec, MLPHead, unflatten
from tinyfleet.device.learner import (
    link_buffer_bytes,
    minibatch_sgd_ram_bytes,
    online_sgd_ram_bytes,
    sample_bytes_for,
)
from tinyfleet.device.wire.compress import float32_array, int8_array, quantize_int8, sparse_top_p
from tinyfleet.device.wire.contract import (
    FLOAT_BYTES,
    KEY_DEVICE_INDEX,
    KEY_ROUND,
    KEY_SEED,
    METRIC_BYTES_DOWN,
    METRIC_BYTES_UP,
    METRIC_RAM_BYTES,
    RoundPlan,
    RoundStats,
)
from tinyfleet.device.wire.encode import encode_message
from tinyfleet.device.wire.quant import dequantize
from tinyfleet.device.wire.types import FieldValue, MessageType, WireArray
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


def round_ram_bytes(
    spec: HeadSpec, plan: RoundPlan, task_bytes: int = 0, reply_bytes: int = 0
) -> int:
    """Peak RAM a device needs for ``plan`` (see the module docstring); with the encoded
    task and reply sizes, their message buffers included."""
    if task_bytes or reply_bytes:
        return round_ram_bytes(spec, plan) + link_buffer_bytes(task_bytes, reply_bytes)
    sample = sample_bytes_for(spec)
    if plan.upload == "delta":
        # The update phi - theta needs theta's shared entries kept beside phi.
        shared = spec.num_params - local_param_count(spec, plan.local_layers)
        base = round_ram_bytes(
            spec,
            replace(plan, upload="phi", top_p=1.0, local_layers=0, recon_steps=0, theta_int8=False),
        )
        # The kept entries' indices (u32) and values (int8 or float32), staged for the
        # encoder (the firmware's g_sel_idx / g_sel_q).
        sparse = plan.top_p < 1.0 or shared < spec.num_params
        keep = max(1, math.ceil(plan.top_p * shared)) if sparse else 0
        staged = keep * (4 + (1 if plan.upload_int8 else FLOAT_BYTES))
        kept = spec.num_params if plan.theta_int8 else FLOAT_BYTES * shared
        return base + kept + staged
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
            local = 2 * int(plan.local_layers)  # the last layers' W, b arrays
            losses = []
            for step in range(plan.k):
                x, y = _one_sample(stream, rng)
                if step < plan.recon_steps:  # reconstruct the local layers, shared frozen
                    losses.append(_local_step(head, x, y, plan.inner_lr, local))
                else:
                    losses.append(head.sgd_step(x, y, plan.inner_lr))
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


def _local_step(head: MLPHead, x: np.ndarray, y: np.ndarray, lr: float, arrays: int) -> float:
    """One SGD step on the last ``arrays`` parameter arrays only (the rest frozen)."""
    loss, grads = head.loss_and_grads(x, y)
    lr32 = np.float32(lr)
    for p, g in zip(head.params[-arrays:], grads[-arrays:], strict=True):
        p -= lr32 * g
    return loss


def local_param_count(spec: HeadSpec, local_layers: int) -> int:
    """Entries of the last ``local_layers`` layers: the tail of the flat vector."""
    shapes = spec.param_shapes()
    if not 0 <= int(local_layers) < len(shapes) // 2:
        raise UsageError(
            f"local layers must be in [0, {len(shapes) // 2 - 1}] for this head, got "
            f"{local_layers} (at least one layer must be shared)"
        )
    tail = shapes[len(shapes) - 2 * int(local_layers) :]
    return sum(int(np.prod(s)) for s in tail)


def upload_array(
    name: str, theta: np.ndarray, phi: np.ndarray, spec: HeadSpec, plan: RoundPlan
) -> WireArray:
    """What the reply carries for ``plan`` (see the contract's "What the reply carries").

    ``phi`` dense (float32 or int8), or the update ``phi - theta`` without the local
    layers' entries, Top-P% sparse and/or int8 when the plan says so.
    """
    phi = np.asarray(phi, np.float32)
    if plan.upload == "phi":
        return int8_array(name, phi) if plan.upload_int8 else float32_array(name, phi)
    # theta-int8: the device kept only an int8 theta; the update is against its copy.
    reference = int8_reference(theta) if plan.theta_int8 else np.asarray(theta, np.float32)
    delta = (phi - reference).astype(np.float32)
    shared = delta.size - local_param_count(spec, plan.local_layers)
    if plan.top_p >= 1.0 and shared == delta.size:
        return int8_array(name, delta) if plan.upload_int8 else float32_array(name, delta)
    sparse = sparse_top_p(name, delta[:shared], plan.top_p, int8=plan.upload_int8)
    if plan.theta_int8:
        # A kept entry must stay visible to the server (it corrects the non-zero ones):
        # one that rounds to zero moves one int8 step away from it.
        q = sparse.values.astype(np.int16)
        zero = q == sparse.zero_point
        q[zero] = sparse.zero_point + (1 if sparse.zero_point < 127 else -1)
        sparse = replace(sparse, values=q.astype(np.int8))
    return replace(sparse, shape=tuple(int(d) for d in delta.shape))


def int8_reference(theta: np.ndarray) -> np.ndarray:
    """theta as a ``theta-int8`` device keeps it: ``dequantize(quantize_int8(theta))``.

    The server computes the same from its theta to correct the update (contract)."""
    q, scale, zero_point = quantize_int8(np.asarray(theta, np.float32))
    return dequantize(q, scale, zero_point)


def encoded_bytes(
    msg_type: MessageType,
    server_round: int,
    device_id: str,
    fields: Mapping[str, FieldValue],
    arrays: list[WireArray],
) -> int:
    """Size of the encoded wire message (what MQTT carries, without chunking).

    Computed by encoding; every part but strings and arrays is fixed-width, so sizes are
    cached by layout (keys, value types, string lengths, array shapes/dtypes/entries)."""
    layout = (
        int(msg_type),
        len(device_id.encode()),
        tuple(
            (k, type(v).__name__, len(v.encode()) if isinstance(v, str) else 0)
            for k, v in fields.items()
        ),
        tuple(
            (a.name, a.shape, int(a.dtype), -1 if a.indices is None else int(a.indices.size))
            for a in arrays
        ),
    )
    size = _SIZES.get(layout)
    if size is None:
        size = len(
            encode_message(
                msg_type,
                round=server_round,
                msg_id=0,
                device_id=device_id,
                fields=fields,
                arrays=arrays,
            )
        )
        if len(_SIZES) < 4096:
            _SIZES[layout] = size
    return size


_SIZES: dict[tuple[Any, ...], int] = {}


def run_reply_round(
    theta: np.ndarray,
    config: Mapping[str, Any],
    spec: HeadSpec,
    stream_for_device: StreamForDevice,
    *,
    array_name: str,
    device_id: str,
    task_bytes: int,
    macs_per_sample: int = 0,
    own_device_index: int | None = None,
    trainer: Trainer | None = None,
    upload: Callable[[np.ndarray, np.ndarray], WireArray] | None = None,
) -> tuple[WireArray, dict[str, Any]]:
    """:func:`run_configured_round`, then the reply as it travels: ``(array, metrics)``.

    The array is :func:`upload_array` of the plan (or ``upload(theta, phi)``, e.g. the
    update a firmware encoded itself); the metrics' ``bytes-down`` is
    ``task_bytes`` (the encoded task's size) and ``bytes-up`` the encoded REPLY's size
    (fields are fixed-width, so the size does not depend on the value it reports).
    Every transport (in-process ClientApp, MQTT device, serial bridge) calls this.
    """
    theta = np.asarray(theta, np.float32)
    phi, metrics = run_configured_round(
        theta,
        config,
        spec,
        stream_for_device,
        macs_per_sample=macs_per_sample,
        own_device_index=own_device_index,
        trainer=trainer,
    )
    plan = RoundPlan.from_config(config)
    if upload is not None:
        array = replace(upload(theta, phi), name=array_name)
    else:
        array = upload_array(array_name, theta, phi, spec, plan)
    metrics[METRIC_BYTES_DOWN] = int(task_bytes)
    metrics[METRIC_BYTES_UP] = 0
    server_round = int(metrics[KEY_ROUND])
    metrics[METRIC_BYTES_UP] = encoded_bytes(
        MessageType.REPLY, server_round, device_id, metrics, [array]
    )
    # The message buffers join the RAM figure (an int either way: the size is unchanged).
    metrics[METRIC_RAM_BYTES] = round_ram_bytes(
        spec, plan, int(task_bytes), int(metrics[METRIC_BYTES_UP])
    )
    return array, metrics


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
