"""On-device online learning: frozen int8 backbone + float32 head, SGD with batch 1.

Each arriving sample is embedded by the backbone (TFLM), the head takes ONE SGD step on
it, and the sample is dropped: nothing is buffered between steps.

RAM accounting (bytes; float32 = 4 bytes). The same functions give the numbers for the
federated report's ``device_ram_bytes`` so that every strategy is costed alike.

:func:`online_sgd_ram_bytes` -- batch-1 online SGD, as the firmware does it::

    params        4 * P                                (P = head.num_params)
    activations   4 * sum(layer_sizes)                 (h_0 = embedding ... h_L = output,
                                                        kept from the forward pass)
    deltas        4 * 2 * max(layer_sizes[1:])         (delta of the current layer and of
                                                        the layer below)
    sample        sample_bytes                         (the raw sample + its target)
    arena         arena_bytes                          (the backbone's TFLM arena)

  No gradient buffer: with batch 1 the update is done in place, layer by layer from the
  top -- propagate the delta to the layer below with the OLD weights, then update this
  layer's weights ``W -= lr * outer(h_in, delta)`` and bias ``b -= lr * delta``. That is
  exactly :meth:`MLPHead.sgd_step` (which computes all gradients first), only in less
  memory.

:func:`minibatch_sgd_ram_bytes` -- Reptile / FedAvg style local training on a stored
support set::

    params        4 * P
    gradients     4 * P                                (ONE accumulator for the batch)
    optimizer     0 (sgd), 4 * P (momentum), 8 * P (adam: two moments)
    stored set    stored_samples * sample_bytes
    activations   4 * (sum(layer_sizes) + 2 * max(layer_sizes[1:]))   (ONE sample's)
    arena         arena_bytes

  The minibatch gradient is the mean of per-sample gradients computed one sample at a
  time (``device/rounds.py``'s ``_batch_grads``): each sample's forward/backward pass adds
  its outer products into the accumulator layer by layer, then its activations are reused
  for the next sample. So the batch size does not multiply the activations; it only
  decides whether an accumulator is needed at all (batch 1 + SGD updates in place and
  is costed by :func:`online_sgd_ram_bytes` plus the stored set).

:func:`link_buffer_bytes` -- the message buffers of a round, counted alike for every
strategy from the encoded task and reply (what the firmware's device loop,
``firmware/apps/tinyfleet_device.c``, holds: it decodes and encodes WHOLE messages, it
does not stream)::

    receive       1 + task_bytes + 2                   (frame kind + task + CRC-16, the
                                                        frame decoded in place: g_rx)
    reply         1 + reply_bytes                      (kind + encoded reply: g_msg)
    reply frame   COBS(1 + reply_bytes + 2) + 0x00     (g_frame, the bytes on the line)

  A dense float32 reply therefore costs about twice its size in RAM; a small compressed
  reply (TinyMetaFed's Top-P% int8 update) almost nothing. A device that streamed its
  messages would need none of this (not built).

:func:`sample_bytes_for` gives ``sample_bytes`` for a raw sample: float32 values of the
input plus the target (an int32 label for classification, float32 outputs for
regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tinyfleet.device.head import HeadSpec, MLPHead
from tinyfleet.errors import UsageError

FLOAT_BYTES = 4
OPTIMIZER_STATE_FLOATS = {"sgd": 0, "momentum": 1, "adam": 2}  # per parameter


def _activation_floats(spec: HeadSpec) -> int:
    return sum(spec.layer_sizes) + 2 * max(spec.layer_sizes[1:])


def sample_bytes_for(spec: HeadSpec, input_shape: tuple[int, ...] | None = None) -> int:
    """Bytes of one raw sample (float32 input of ``input_shape``, default the head's input)
    plus its target (int32 label for ``softmax_ce``, float32 outputs for ``mse``)."""
    n_inputs = int(np.prod(input_shape)) if input_shape is not None else spec.input_dim
    target = FLOAT_BYTES if spec.loss == "softmax_ce" else FLOAT_BYTES * spec.output_dim
    return FLOAT_BYTES * n_inputs + target


def online_sgd_ram_bytes(spec: HeadSpec, sample_bytes: int, arena_bytes: int = 0) -> int:
    """Peak RAM of batch-1 online SGD with in-place updates (see module docstring)."""
    if sample_bytes < 0 or arena_bytes < 0:
        raise UsageError("sample_bytes and arena_bytes must be >= 0")
    return (
        FLOAT_BYTES * spec.num_params
        + FLOAT_BYTES * _activation_floats(spec)
        + int(sample_bytes)
        + int(arena_bytes)
    )


def cobs_frame_bytes(payload_bytes: int) -> int:
    """Bytes of the serial frame of a ``payload_bytes`` payload: COBS over payload + CRC-16,
    plus the 0x00 delimiter (``tinyfleet_frame_max_encoded`` in the firmware)."""
    body = int(payload_bytes) + 2
    return body + body // 254 + 2


def link_buffer_bytes(task_bytes: int, reply_bytes: int) -> int:
    """RAM of a round's message buffers: the whole task received, the reply and its frame
    (see the module docstring). 0 for a device that neither receives nor sends."""
    if task_bytes < 0 or reply_bytes < 0:
        raise UsageError("task_bytes and reply_bytes must be >= 0")
    if task_bytes == 0 and reply_bytes == 0:
        return 0
    receive = 1 + int(task_bytes) + 2
    return receive + 1 + int(reply_bytes) + cobs_frame_bytes(1 + int(reply_bytes))


def minibatch_sgd_ram_bytes(
    spec: HeadSpec,
    batch: int,
    stored_samples: int,
    sample_bytes: int,
    arena_bytes: int = 0,
    optimizer: str = "sgd",
) -> int:
    """Peak RAM of mini-batch training over a stored support set (see module docstring)."""
    if optimizer not in OPTIMIZER_STATE_FLOATS:
        raise UsageError(
            f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZER_STATE_FLOATS)}"
        )
    if batch < 1 or stored_samples < 0 or sample_bytes < 0 or arena_bytes < 0:
        raise UsageError("batch must be >= 1; stored_samples, sample_bytes, arena_bytes >= 0")
    params = spec.num_params
    # Per-sample gradients are accumulated one sample at a time: one sample's activations.
    return (
        FLOAT_BYTES * params * (2 + OPTIMIZER_STATE_FLOATS[optimizer])
        + int(stored_samples) * int(sample_bytes)
        + FLOAT_BYTES * _activation_floats(spec)
        + int(arena_bytes)
    )


class Backbone(Protocol):
    """What the learner needs from a backbone: :class:`~tinyfleet.device.backbone.
    Int8Backbone` or its cached stand-in :class:`~tinyfleet.device.embedding_cache.
    CachedEmbedder`."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def arena_bytes(self) -> int: ...
    @property
    def macs(self) -> int: ...
    def embed(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LearnerStats:
    """What a learning session cost the device.

    ``macs`` counts backbone inferences plus head SGD steps (forward and backward);
    ``peak_ram_bytes`` is :func:`online_sgd_ram_bytes` with the backbone's arena.
    """

    sgd_steps: int
    macs: int
    peak_ram_bytes: int
    last_loss: float | None


class OnlineLearner:
    """Learns online on a device: embed one sample, one head SGD step, drop the sample.

    Parameters
    ----------
    head
        The float32 head; trained in place.
    backbone
        The int8 feature extractor (:class:`~tinyfleet.device.backbone.Int8Backbone`, or a
        :class:`~tinyfleet.device.embedding_cache.CachedEmbedder`), or ``None`` when the head sees raw inputs (sine).
    lr
        Inner learning rate.
    """

    def __init__(self, head: MLPHead, backbone: Backbone | None, lr: float) -> None:
        if not lr > 0:
            raise UsageError(f"learning rate must be > 0, got {lr}")
        if backbone is not None and backbone.embedding_dim != head.spec.input_dim:
            raise UsageError(
                f"backbone embedding has {backbone.embedding_dim} values, head expects "
                f"{head.spec.input_dim}"
            )
        self.head = head
        self.backbone = backbone
        self.lr = float(lr)
        input_shape = backbone.input_shape if backbone is not None else None
        arena = backbone.arena_bytes if backbone is not None else 0
        self._peak_ram = online_sgd_ram_bytes(
            head.spec, sample_bytes_for(head.spec, input_shape), arena
        )
        # MACs of one learn(): the backbone's inference plus the head's SGD step.
        self._step_macs = (backbone.macs if backbone is not None else 0) + head.spec.macs_sgd_step
        self._sgd_steps = 0
        self._macs = 0
        self._last_loss: float | None = None

    def learn(self, x: np.ndarray, y: np.ndarray | float | int) -> float:
        """One raw sample ``x`` (backbone input shape, or the head input) and its target:
        embed, one SGD step; returns the loss before the step."""
        if self.backbone is not None:
            embedding = self.backbone.embed(np.asarray(x, dtype=np.float32))
            if embedding.ndim != 1:
                raise UsageError("learn() takes ONE sample; loop over a batch")
        else:
            embedding = np.asarray(x, dtype=np.float32).reshape(-1)
        return self.learn_embedding(embedding, y)

    def learn_embedding(self, embedding: np.ndarray, y: np.ndarray | float | int) -> float:
        """SGD step on an embedding computed earlier (e.g. a cached, bit-identical
        backbone output). Costs are counted as if the backbone had just run."""
        loss = self.head.sgd_step(embedding, y, self.lr)
        self._sgd_steps += 1
        self._macs += self._step_macs
        self._last_loss = loss
        return loss

    @property
    def stats(self) -> LearnerStats:
        return LearnerStats(
            sgd_steps=self._sgd_steps,
            macs=self._macs,
            peak_ram_bytes=self._peak_ram,
            last_loss=self._last_loss,
        )
