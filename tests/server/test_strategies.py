"""Server updates of TinyReptile, Reptile and FedAvg on fixed arrays, and bad replies."""

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND, RoundPlan
from tinyfleet.server.grid import InProcessGrid
from tinyfleet.server.run import quiet_flower, run_with_grid
from tinyfleet.server.sampling import SeededSampler
from tinyfleet.server.strategies import (
    FedAvg,
    Reptile,
    TinyReptile,
    annealed_beta,
    outer_step,
)

quiet_flower()
PLAN = RoundPlan("online", 0.1, k=2)


def fixed_device(phis, num_examples=None):
    """A device that always answers with ``phis[device_index]`` (a fixed reply)."""

    def call(message: Message) -> Message:
        config = message.content["config"]
        device = int(config[KEY_DEVICE_INDEX])
        metrics = {
            "device-index": device,
            "round": int(config[KEY_ROUND]),
            "num-examples": (num_examples or {}).get(device, 1),
            "grad-evals": 2,
            "loss": 0.0,
        }
        content = RecordDict(
            {"arrays": ArrayRecord([phis[device]]), "metrics": MetricRecord(metrics)}
        )
        return Message(content, reply_to=message)

    return call


def test_annealed_beta_is_linear_from_beta0():
    assert annealed_beta(0.8, 1, 4) == pytest.approx(0.8)
    assert annealed_beta(0.8, 2, 4) == pytest.approx(0.6)
    assert annealed_beta(0.8, 4, 4) == pytest.approx(0.2)


def test_tinyreptile_update_is_theta_plus_beta_phi_minus_theta():
    theta = np.array([1.0, -2.0, 0.5], np.float32)
    phi = np.array([3.0, 0.0, 0.5], np.float32)
    strategy = TinyReptile(PLAN, num_devices=1, seed=0, num_rounds=2, beta0=0.5)
    final, result = run_with_grid(strategy, InProcessGrid(fixed_device([phi]), 1), theta, 2)
    once = theta + np.float32(0.5) * (phi - theta)  # round 1: beta = 0.5
    twice = once + np.float32(0.25) * (phi - once)  # round 2: beta = 0.5 * (1 - 1/2)
    np.testing.assert_array_equal(final, twice)
    np.testing.assert_array_equal(outer_step(theta, phi, 0.5), once)
    assert strategy.counters.grad_evals_total == 4
    assert strategy.counters.bytes_up_total == 2 * 12


def test_reptile_steps_towards_the_mean_and_fedavg_weights_by_examples():
    theta = np.zeros(2, np.float32)
    phis = [np.array([1, 2], np.float32), np.array([3, 6], np.float32)]
    plan = RoundPlan("batch", 0.1, support_size=4)
    # Fixed arrays far from theta = 0: the update bound (tests/server/test_faults_poison.py)
    # is off here; this test is about the algebra.
    unbounded = {"max_update_ratio": None}
    reptile = Reptile(
        plan, num_devices=2, clients_per_round=2, num_rounds=1, beta0=0.5, **unbounded
    )
    final, _ = run_with_grid(reptile, InProcessGrid(fixed_device(phis), 2), theta, 1)
    np.testing.assert_allclose(final, [1.0, 2.0])  # 0.5 * mean([1,2],[3,6]) = 0.5*[2,4]
    fedavg = FedAvg(plan, num_devices=2, clients_per_round=2, num_rounds=1, **unbounded)
    device = fixed_device(phis, num_examples={0: 1, 1: 3})
    final, _ = run_with_grid(fedavg, InProcessGrid(device, 2), theta, 1)
    np.testing.assert_allclose(final, [2.5, 5.0])  # (1*[1,2] + 3*[3,6]) / 4


@pytest.mark.parametrize(
    "bad",
    [
        np.array([np.nan, 0.0, 0.0], np.float32),
        np.array([np.inf, 0.0, 0.0], np.float32),
        np.zeros(4, np.float32),
        np.zeros(3, np.float64),
    ],
)
def test_bad_replies_are_rejected_and_leave_the_model_unchanged(bad):
    theta = np.array([1.0, 2.0, 3.0], np.float32)
    strategy = TinyReptile(PLAN, num_devices=1, num_rounds=3)
    final, _ = run_with_grid(strategy, InProcessGrid(fixed_device([bad]), 1), theta, 3)
    np.testing.assert_array_equal(final, theta)
    assert strategy.counters.rejected_replies == 3 and strategy.counters.accepted_replies == 0


def test_a_failing_device_is_an_error_reply_not_a_crash():
    def broken(message):
        raise RuntimeError("battery empty")

    theta = np.ones(3, np.float32)
    grid = InProcessGrid(broken, 1)
    strategy = TinyReptile(PLAN, num_devices=1, num_rounds=2)
    final, _ = run_with_grid(strategy, grid, theta, 2)
    np.testing.assert_array_equal(final, theta)
    assert strategy.counters.rejected_replies == 2 and grid.message_errors == 2


def test_seeded_sampler_is_reproducible_and_respects_eligibility():
    a = SeededSampler(100, seed=7)
    assert a.select(3, 5) == SeededSampler(100, seed=7).select(3, 5)
    assert len(set(a.select(3, 5))) == 5
    assert a.select(3, 5) != a.select(4, 5)
    only_even = SeededSampler(100, 7, eligible=lambda r: range(0, 100, 2))
    assert all(i % 2 == 0 for i in only_even.select(1, 20))
    assert SeededSampler(10, 0, eligible=lambda r: []).select(1, 3) == []


def test_vector_record_is_flowers_own_record_and_reads_back() -> None:
    """The fast record path writes the bytes ``ArrayRecord([v])`` writes, and reads any
    Flower-made record (also one it cannot take the fast path for) exactly."""
    from flwr.app import Array, ArrayRecord

    from tinyfleet.server.records import single_vector, vector_record

    v = np.random.default_rng(0).normal(size=1761).astype(np.float32)
    ours, flowers = vector_record(v), ArrayRecord([v])
    assert list(ours.keys()) == list(flowers.keys()) == ["0"]
    a, b = ours["0"], flowers["0"]
    assert (a.dtype, tuple(a.shape), a.stype, a.data) == (b.dtype, tuple(b.shape), b.stype, b.data)
    assert single_vector(flowers).tobytes() == v.tobytes()
    doubles = ArrayRecord([v.astype(np.float64)])  # another header: np.load's path
    assert single_vector(doubles).dtype == np.float64
    fortran = ArrayRecord({"0": Array(np.asfortranarray(np.ones((3, 2), np.float32)))})
    assert np.array_equal(single_vector(fortran), np.ones((3, 2), np.float32))
