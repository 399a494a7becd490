"""The device's local round: seeding, online/batch updates vs hand-written references."""

import numpy as np
import pytest

from tinyfleet.device.head import HeadSpec, MLPHead, flatten, init_params
from tinyfleet.device.rounds import round_ram_bytes, round_rng, run_local_round
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.fewshot import online_adaptation_curve

SPEC = HeadSpec((1, 8, 8, 1), "tanh", "mse")


class LineStream:
    def sample(self, n, rng):
        x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
        return x, (2 * x + 0.5).astype(np.float32)


def _theta(seed=0):
    return flatten(init_params(SPEC, np.random.default_rng(seed)))


def test_online_round_equals_k_sgd_steps_on_the_same_samples():
    theta = _theta()
    plan = RoundPlan("online", 0.05, k=4)
    phi, stats = run_local_round(theta, SPEC, LineStream(), plan, round_rng(3, 7, 2))
    rng = round_rng(3, 7, 2)
    head = MLPHead(SPEC)
    head.set_vector(theta)
    for _ in range(4):
        x, y = LineStream().sample(1, rng)
        head.sgd_step(x[0], y[0], 0.05)
    np.testing.assert_array_equal(phi, head.get_vector())
    assert stats.grad_evals == 4 and stats.sgd_steps == 4 and stats.num_examples == 4
    assert stats.bytes_up == stats.bytes_down == SPEC.num_params * 4


def test_batch_round_is_minibatch_sgd_with_mean_gradient():
    theta = _theta()
    plan = RoundPlan("batch", 0.1, support_size=6, epochs=2, batch_size=3)
    phi, stats = run_local_round(theta, SPEC, LineStream(), plan, round_rng(1, 0, 1))
    rng = round_rng(1, 0, 1)
    x, y = LineStream().sample(6, rng)
    head = MLPHead(SPEC)
    head.set_vector(theta)
    for _ in range(2):
        order = rng.permutation(6)
        for start in (0, 3):
            grads = [head.loss_and_grads(x[i], y[i])[1] for i in order[start : start + 3]]
            for j, p in enumerate(head.params):
                p -= np.float32(0.1) * (sum(g[j] for g in grads) * np.float32(1 / 3))
    np.testing.assert_allclose(phi, head.get_vector(), rtol=1e-6, atol=1e-7)
    assert stats.grad_evals == 12 and stats.sgd_steps == 4 and stats.num_examples == 6


def test_round_is_deterministic_and_depends_on_device_and_round():
    plan = RoundPlan("online", 0.02, k=3)
    a = run_local_round(_theta(), SPEC, LineStream(), plan, round_rng(0, 1, 1))[0]
    b = run_local_round(_theta(), SPEC, LineStream(), plan, round_rng(0, 1, 1))[0]
    c = run_local_round(_theta(), SPEC, LineStream(), plan, round_rng(0, 2, 1))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ram_accounting_counts_stored_samples_and_adam_buffer():
    params = SPEC.num_params * 4
    acts = 4 * (1 + 8 + 8 + 1 + 2 * 8)  # layer outputs + two deltas, per sample
    online = round_ram_bytes(SPEC, RoundPlan("online", 0.02, k=10))
    assert online == params + acts + 8  # in-place SGD: no gradient buffer
    batch = RoundPlan("batch", 0.02, support_size=50, batch_size=10, optimizer="adam")
    # per-sample gradients are accumulated: one sample's activations, not a batch's (issue 11)
    assert round_ram_bytes(SPEC, batch) == 3 * params + 50 * 8 + acts
    sgd = RoundPlan("batch", 0.02, support_size=50, batch_size=10, arena_bytes=100)
    assert round_ram_bytes(SPEC, sgd) == 2 * params + 50 * 8 + acts + 100
    in_place = RoundPlan("batch", 0.02, support_size=50, batch_size=1)
    assert round_ram_bytes(SPEC, in_place) == params + acts + 50 * 8


def test_config_round_trip_and_bad_plans():
    plan = RoundPlan("batch", 0.01, k=3, support_size=20, epochs=2, batch_size=5)
    assert RoundPlan.from_config(plan.to_config()) == plan
    with pytest.raises(UsageError):
        RoundPlan("magic", 0.1)
    with pytest.raises(UsageError):
        RoundPlan("online", 0.1, k=0)
    with pytest.raises(UsageError):
        RoundPlan.from_config({"algorithm": "online"})
    with pytest.raises(UsageError):
        run_local_round(np.zeros(3, np.float32), SPEC, LineStream(), plan, round_rng(0, 0, 1))


def test_adaptation_curve_starts_at_initial_metric():
    x, y = LineStream().sample(5, np.random.default_rng(0))
    curve = online_adaptation_curve(_theta(), SPEC, x, y, 20, 0.1, lambda h: h.loss(x, y))
    assert len(curve) == 21
    head = MLPHead(SPEC)
    head.set_vector(_theta())
    assert curve[0] == pytest.approx(head.loss(x, y))
    assert curve[-1] < curve[0]
