"""The float head: SGD step against finite differences and a closed form."""

import numpy as np
import pytest

from tinyfleet.device.head import HeadSpec, MLPHead, flatten, unflatten
from tinyfleet.errors import UsageError


def _numeric_grad(head: MLPHead, x, y, eps=1e-3):
    base = head.get_vector().astype(np.float64)
    grad = np.zeros_like(base)
    for i in range(base.size):
        for sign in (1, -1):
            v = base.copy()
            v[i] += sign * eps
            h = head.copy()
            h.set_vector(v.astype(np.float32))
            grad[i] += sign * h.loss(
                x[None, :],
                np.asarray(y).reshape(1, -1) if head.spec.loss == "mse" else np.asarray([y]),
            )
        grad[i] /= 2 * eps
    return grad


@pytest.mark.parametrize(
    "spec,y",
    [
        (HeadSpec((3, 5, 2), "tanh", "mse"), np.array([0.3, -1.2])),
        (HeadSpec((4, 6, 3), "relu", "softmax_ce"), 2),
        (HeadSpec((1, 8, 8, 1), "tanh", "mse"), np.array([0.7])),
    ],
)
def test_gradient_matches_finite_differences(spec, y):
    rng = np.random.default_rng(1)
    head = MLPHead(spec, seed=3)
    # Move biases off zero so relu kinks are not hit exactly.
    head.set_vector(head.get_vector() + rng.normal(0, 0.1, spec.num_params).astype(np.float32))
    x = rng.normal(size=spec.input_dim).astype(np.float32)
    _, grads = head.loss_and_grads(x, y)
    np.testing.assert_allclose(flatten(grads), _numeric_grad(head, x, y), rtol=2e-2, atol=2e-3)


def test_sgd_step_closed_form_linear_model():
    # A linear head (no hidden layer), mse on one output: grad W = 2 (w.x + b - y) x.
    spec = HeadSpec((2, 1), "tanh", "mse")
    w = np.array([[0.5], [-1.0]], np.float32)
    b = np.array([0.25], np.float32)
    head = MLPHead(spec, [w, b])
    x = np.array([2.0, 1.0], np.float32)
    err = float(w[0, 0] * 2 + w[1, 0] * 1 + b[0] - 3.0)  # 0.25 - 3 = -2.75
    loss = head.sgd_step(x, 3.0, lr=0.1)
    assert loss == pytest.approx(err**2)
    np.testing.assert_allclose(head.params[0][:, 0], w[:, 0] - 0.1 * 2 * err * x, rtol=1e-6)
    np.testing.assert_allclose(head.params[1], b - 0.1 * 2 * err, rtol=1e-6)


def test_flatten_roundtrip_and_shape_errors():
    spec = HeadSpec((1, 4, 1))
    head = MLPHead(spec, seed=0)
    v = head.get_vector()
    assert v.shape == (spec.num_params,) == (4 + 4 + 4 + 1,)
    for a, b in zip(unflatten(spec, v), head.params, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UsageError):
        unflatten(spec, np.zeros(3, np.float32))
    with pytest.raises(UsageError):
        HeadSpec((1,))
    with pytest.raises(UsageError):
        head.sgd_step(np.zeros(2, np.float32), 0.0, 0.1)


@pytest.mark.parametrize(
    "sizes,activation,loss",
    [
        ((1, 40, 40, 1), "tanh", "mse"),
        ((32, 32, 5), "relu", "softmax_ce"),
        ((8, 5), "relu", "softmax_ce"),
        ((4, 16, 16, 3), "tanh", "softmax_ce"),
        ((3, 7, 2), "relu", "mse"),
    ],
)
def test_in_place_sgd_step_is_bit_identical_to_grads_then_update(
    sizes: tuple[int, ...], activation: str, loss: str
) -> None:
    """The allocation-free sgd_step against its definition: loss_and_grads, then
    ``p -= lr * g`` for every parameter (bit for bit, 300 steps)."""
    spec = HeadSpec(sizes, activation, loss)
    fast, reference = MLPHead(spec, seed=3), MLPHead(spec, seed=3)
    rng = np.random.default_rng(7)
    lr = np.float32(0.05)
    for _ in range(300):
        x = rng.normal(size=sizes[0]).astype(np.float32)
        y = (
            rng.normal(size=sizes[-1]).astype(np.float32)
            if loss == "mse"
            else int(rng.integers(sizes[-1]))
        )
        expected_loss, grads = reference.loss_and_grads(x, y)
        for p, g in zip(reference.params, grads, strict=True):
            p -= lr * g
        assert fast.sgd_step(x, y, 0.05) == expected_loss
    assert fast.get_vector().tobytes() == reference.get_vector().tobytes()


def test_row_mean_is_np_mean_bit_for_bit() -> None:
    """The MSE loss's row mean (without np.mean's wrapper) gives np.mean's exact bits."""
    from tinyfleet.device.head import _row_mean

    rng = np.random.default_rng(3)
    for width in (1, 2, 3, 5, 7, 10, 32, 100, 129, 1000):
        for batch in (1, 4):
            scale = 10 ** rng.uniform(-3, 3)
            a = (rng.standard_normal((batch, width)) * scale).astype(np.float32)
            got = _row_mean(a)
            assert got.dtype == np.float32
            assert got.tobytes() == np.mean(a, axis=1).tobytes()
