"""The trainable float32 head: a small MLP trained by plain SGD, one sample at a time.

Pure numpy, no TensorFlow: this is what runs on the device (and what the C firmware
mirrors in ``firmware/``). Parameters are a list of float32 arrays in the order
``W0, b0, W1, b1, ...`` with ``W_i`` of shape ``(fan_in, fan_out)``; the flat vector
view (:meth:`MLPHead.get_vector`) concatenates them in that order, C-contiguous.

Maths (per sample ``x`` of shape ``(d,)``):
  ``h_0 = x``; ``z_i = h_i @ W_i + b_i``; ``h_{i+1} = act(z_i)`` for hidden layers;
  the last layer is linear. Loss ``mse``: ``mean((z - y)^2)`` over the outputs.
  Loss ``softmax_ce``: ``-log softmax(z)[y]`` with an integer label ``y``.
  SGD: ``p <- p - lr * dL/dp``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tinyfleet.errors import UsageError

ACTIVATIONS = ("tanh", "relu")
LOSSES = ("mse", "softmax_ce")


@dataclass(frozen=True)
class HeadSpec:
    """Shape of an MLP head.

    Parameters
    ----------
    layer_sizes
        ``(input_dim, hidden_1, ..., output_dim)``; at least two entries.
    activation
        Hidden-layer activation, ``"tanh"`` or ``"relu"``; the output layer is linear.
    loss
        ``"mse"`` (regression) or ``"softmax_ce"`` (classification, integer labels).
    """

    layer_sizes: tuple[int, ...]
    activation: str = "tanh"
    loss: str = "mse"

    def __post_init__(self) -> None:
        if len(self.layer_sizes) < 2 or any(int(n) < 1 for n in self.layer_sizes):
            raise UsageError(f"head layer sizes must be >= 2 positive ints, got {self.layer_sizes}")
        if self.activation not in ACTIVATIONS:
            raise UsageError(f"unknown activation {self.activation!r}; choose from {ACTIVATIONS}")
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}; choose from {LOSSES}")
        object.__setattr__(self, "layer_sizes", tuple(int(n) for n in self.layer_sizes))

    @property
    def input_dim(self) -> int:
        return self.layer_sizes[0]

    @property
    def output_dim(self) -> int:
        return self.layer_sizes[-1]

    def param_shapes(self) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = []
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True):
            shapes += [(fan_in, fan_out), (fan_out,)]
        return shapes

    # Cached: a frozen spec's sizes never change, and these are read on every round.
    @cached_property
    def num_params(self) -> int:
        return sum(int(np.prod(s)) for s in self.param_shapes())

    @cached_property
    def macs_forward(self) -> int:
        """Multiply-accumulates of one forward pass (one sample)."""
        return sum(a * b for a, b in zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))

    @cached_property
    def macs_sgd_step(self) -> int:
        """MACs of one SGD step: forward + backward (input grads and weight grads)."""
        fwd = self.macs_forward
        first = self.layer_sizes[0] * self.layer_sizes[1]
        # weight grads: one MAC per weight; input grads: every layer but the first.
        return fwd + fwd + (fwd - first)

    def to_dict(self) -> dict[str, object]:
        return {
            "layer_sizes": list(self.layer_sizes),
            "activation": self.activation,
            "loss": self.loss,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HeadSpec:
        sizes = data["layer_sizes"]
        assert isinstance(sizes, list | tuple)
        return cls(
            tuple(int(n) for n in sizes),
            str(data.get("activation", "tanh")),
            str(data.get("loss", "mse")),
        )


def init_params(spec: HeadSpec, rng: np.random.Generator) -> list[np.ndarray]:
    """Glorot-uniform weights and zero biases (Keras' defaults), float32."""
    params: list[np.ndarray] = []
    for shape in spec.param_shapes():
        if len(shape) == 2:
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            params.append(rng.uniform(-limit, limit, size=shape).astype(np.float32))
        else:
            params.append(np.zeros(shape, dtype=np.float32))
    return params


def flatten(params: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate parameter arrays into one float32 vector (C order)."""
    return np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in params])


def params_sha256(vector: np.ndarray) -> str:
    """SHA-256 (hex) of a parameter vector's little-endian float32 bytes: its identity
    in reports, logs and the knowledge graph (model versions)."""
    return hashlib.sha256(np.asarray(vector, dtype="<f4").tobytes()).hexdigest()


def unflatten(spec: HeadSpec, vector: np.ndarray) -> list[np.ndarray]:
    """Split a flat vector back into arrays of ``spec.param_shapes()`` (copies)."""
    vector = np.asarray(vector, dtype=np.float32)
    if vector.shape != (spec.num_params,):
        raise UsageError(
            f"expected a parameter vector of {spec.num_params} floats, got shape {vector.shape}"
        )
    out: list[np.ndarray] = []
    offset = 0
    for shape in spec.param_shapes():
        size = int(np.prod(shape))
        out.append(vector[offset : offset + size].reshape(shape).copy())
        offset += size
    return out


@dataclass
class _Work:
    """Per-head buffers of :meth:`MLPHead.sgd_step` (one sample's worth)."""

    acts: list[np.ndarray]
    z: list[np.ndarray]
    delta: list[np.ndarray]
    act_grad: list[np.ndarray]
    grad_w: list[np.ndarray]
    grad_b: list[np.ndarray]
    probs: np.ndarray


class MLPHead:
    """A float32 MLP with per-sample SGD. See the module docstring for the maths."""

    def __init__(
        self, spec: HeadSpec, params: Sequence[np.ndarray] | None = None, seed: int = 0
    ) -> None:
        self.spec = spec
        if params is None:
            params = init_params(spec, np.random.default_rng(seed))
        shapes = spec.param_shapes()
        if len(params) != len(shapes) or any(
            tuple(p.shape) != s for p, s in zip(params, shapes, strict=True)
        ):
            got = [tuple(p.shape) for p in params]
            raise UsageError(f"head parameters have shapes {got}, expected {shapes}")
        self.params = [np.array(p, dtype=np.float32, copy=True) for p in params]
        self._work: _Work | None = None

    # -- parameter views ------------------------------------------------------------
    def get_vector(self) -> np.ndarray:
        return flatten(self.params)

    def set_vector(self, vector: np.ndarray) -> None:
        self.params = unflatten(self.spec, vector)

    def copy(self) -> MLPHead:
        return MLPHead(self.spec, self.params)

    # -- maths ----------------------------------------------------------------------
    def _act(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z) if self.spec.activation == "tanh" else np.maximum(z, np.float32(0))

    def _act_grad(self, h: np.ndarray) -> np.ndarray:
        # Expressed through the activation's output h (tanh' = 1 - h^2, relu' = [h > 0]).
        if self.spec.activation == "tanh":
            return np.float32(1) - h * h
        return (h > 0).astype(np.float32)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs (regression values or logits) for ``x`` of shape ``(d,)`` or ``(n, d)``."""
        h = np.asarray(x, dtype=np.float32)
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            z = h @ self.params[2 * i] + self.params[2 * i + 1]
            h = self._act(z) if i < n_layers - 1 else z
        return h

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean loss over a batch ``x: (n, d)``, ``y: (n, out)`` floats or ``(n,)`` int labels."""
        out = self.forward(np.atleast_2d(x))
        return float(np.mean(_loss_and_delta(self.spec.loss, out, y)[0]))

    def loss_and_grads(
        self, x: np.ndarray, y: np.ndarray | float | int
    ) -> tuple[float, list[np.ndarray]]:
        """Loss and gradients for ONE sample ``x: (d,)`` and its target ``y``."""
        x = np.asarray(x, dtype=np.float32).reshape(1, -1)
        if x.shape[1] != self.spec.input_dim:
            raise UsageError(f"head expects {self.spec.input_dim} inputs, got {x.shape[1]}")
        n_layers = len(self.params) // 2
        activations = [x]
        h = x
        for i in range(n_layers):
            z = h @ self.params[2 * i] + self.params[2 * i + 1]
            h = self._act(z) if i < n_layers - 1 else z
            activations.append(h)
        losses, delta = _loss_and_delta(
            self.spec.loss,
            h,
            np.asarray(y).reshape(1, -1) if self.spec.loss == "mse" else np.asarray(y).reshape(1),
        )
        grads: list[np.ndarray] = [np.empty(0, np.float32)] * len(self.params)
        for i in reversed(range(n_layers)):
            h_in = activations[i]
            grads[2 * i] = (h_in.T @ delta).astype(np.float32)
            grads[2 * i + 1] = delta[0].astype(np.float32)
            if i > 0:
                delta = (delta @ self.params[2 * i].T) * self._act_grad(h_in)
        return float(losses[0]), grads

    def sgd_step(self, x: np.ndarray, y: np.ndarray | float | int, lr: float) -> float:
        """One SGD step on one sample; returns the loss before the step.

        The hot path of on-device learning: activations, deltas and gradients live in
        buffers allocated once per head, and each layer is updated in place right after
        its gradient and the delta for the layer below (which needs the old weights) are
        formed. Every float operation is the one :meth:`loss_and_grads` followed by
        ``p -= lr * g`` performs, in the same order, so the results are bit-identical.
        """
        work = self._work or self._make_work()
        x2 = np.asarray(x, dtype=np.float32).reshape(1, -1)
        if x2.shape[1] != self.spec.input_dim:
            raise UsageError(f"head expects {self.spec.input_dim} inputs, got {x2.shape[1]}")
        acts = work.acts
        acts[0] = x2
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            z = work.z[i]
            np.matmul(acts[i], self.params[2 * i], out=z)
            z += self.params[2 * i + 1]
            if i < n_layers - 1:
                if self.spec.activation == "tanh":
                    np.tanh(z, out=acts[i + 1])
                else:
                    np.maximum(z, np.float32(0), out=acts[i + 1])
            else:
                acts[i + 1] = z
        out = acts[n_layers]
        if self.spec.loss == "softmax_ce":
            loss, delta = _softmax_ce_one(out, y, work.probs)
        else:
            losses, delta = _loss_and_delta("mse", out, np.asarray(y).reshape(1, -1))
            loss = float(losses[0])
        lr32 = np.float32(lr)
        for i in reversed(range(n_layers)):
            h_in = acts[i]
            weights, bias = self.params[2 * i], self.params[2 * i + 1]
            grad_w, grad_b = work.grad_w[i], work.grad_b[i]
            np.matmul(h_in.T, delta, out=grad_w)
            np.multiply(delta[0], lr32, out=grad_b)
            if i > 0:  # the delta below uses the weights BEFORE this step
                below = work.delta[i - 1]
                np.matmul(delta, weights.T, out=below)
                below *= self._act_grad_into(h_in, work.act_grad[i - 1])
                delta = below
            np.multiply(lr32, grad_w, out=grad_w)
            weights -= grad_w
            bias -= grad_b
        return loss

    def _act_grad_into(self, h: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:meth:`_act_grad` written into ``out``."""
        if self.spec.activation == "tanh":
            np.multiply(h, h, out=out)
            return np.subtract(np.float32(1), out, out=out)
        return np.greater(h, 0, out=out, casting="unsafe")  # type: ignore[call-overload,no-any-return]

    def _make_work(self) -> _Work:
        sizes = self.spec.layer_sizes
        n = len(sizes) - 1
        self._work = _Work(
            acts=[np.empty((1, d), np.float32) for d in sizes],
            z=[np.empty((1, sizes[i + 1]), np.float32) for i in range(n)],
            delta=[np.empty((1, sizes[i + 1]), np.float32) for i in range(n - 1)],
            act_grad=[np.empty((1, sizes[i + 1]), np.float32) for i in range(n - 1)],
            grad_w=[np.empty((sizes[i], sizes[i + 1]), np.float32) for i in range(n)],
            grad_b=[np.empty(sizes[i + 1], np.float32) for i in range(n)],
            probs=np.empty((1, sizes[-1]), np.float32),
        )
        return self._work

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        return float(
            np.mean(np.argmax(self.forward(np.atleast_2d(x)), axis=1) == np.asarray(labels))
        )


def _row_mean(a: np.ndarray) -> np.ndarray:
    """``np.mean(a, axis=1)`` for a float32 batch, the same steps without np.mean's Python
    wrapper (~40 us per call, once per SGD step): numpy's pairwise sum, then a true
    divide by the count as an intp, as numpy's ``_mean`` does (same bits)."""
    sums = np.add.reduce(a, axis=1)
    return np.true_divide(sums, np.intp(a.shape[1]), out=sums, casting="unsafe")


def _loss_and_delta(kind: str, out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample losses and dL/d(out) for a batch of outputs."""
    if kind == "mse":
        target = np.asarray(y, dtype=np.float32).reshape(out.shape)
        diff = out - target
        return _row_mean(diff * diff), (np.float32(2.0 / out.shape[1]) * diff).astype(np.float32)
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= out.shape[1]:
        raise UsageError(f"class label out of range [0, {out.shape[1]})")
    shifted = out - out.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    rows = np.arange(out.shape[0])
    losses = -np.log(np.maximum(probs[rows, labels], np.float32(1e-12)))
    delta = probs.astype(np.float32)
    delta[rows, labels] -= 1.0
    return losses, delta


def _softmax_ce_one(out: np.ndarray, y: object, probs: np.ndarray) -> tuple[float, np.ndarray]:
    """:func:`_loss_and_delta` for softmax cross-entropy on ONE sample, written into
    ``probs`` (which becomes the delta): the same float operations in the same order."""
    label = int(np.asarray(y).reshape(-1)[0])
    if not 0 <= label < out.shape[1]:
        raise UsageError(f"class label out of range [0, {out.shape[1]})")
    np.subtract(out, out.max(axis=1, keepdims=True), out=probs)
    np.exp(probs, out=probs)
    np.divide(probs, probs.sum(axis=1, keepdims=True), out=probs)
    loss = -np.log(np.maximum(probs[0, label], np.float32(1e-12)))
    probs[0, label] -= 1.0
    return float(loss), probs
