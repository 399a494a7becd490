"""Transports give the same numbers: Flower's Simulation Engine vs. the in-process Grid,
and the in-process Grid delivering a round's remote devices concurrently vs. in turn."""

import threading

import numpy as np
import pytest

from tinyfleet.device.head import HeadSpec, flatten, init_params
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import quiet_flower, run_in_process, run_in_simulation_engine
from tinyfleet.server.strategies import FedAvg, Reptile, TinyReptile
from tinyfleet.simulations.clientapp import make_client_app

SPEC = HeadSpec((1, 6, 1), "tanh", "mse")
DEVICES_PER_ROUND = 3


class Wave:
    def __init__(self, seed, device):
        self.amplitude = 1.0 + device + 0.1 * seed

    def sample(self, n, rng):
        x = rng.uniform(-3, 3, size=(n, 1)).astype(np.float32)
        return x, (self.amplitude * np.sin(x)).astype(np.float32)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TinyReptile(RoundPlan("online", 0.05, k=3), num_devices=4, seed=5, num_rounds=3),
        lambda: Reptile(
            RoundPlan("batch", 0.05, support_size=6, batch_size=3),
            num_devices=4,
            clients_per_round=3,
            seed=5,
            num_rounds=3,
        ),
        lambda: FedAvg(
            RoundPlan("batch", 0.05, support_size=6, batch_size=3),
            num_devices=4,
            clients_per_round=2,
            seed=5,
            num_rounds=3,
        ),
    ],
    ids=["tinyreptile", "reptile", "fedavg"],
)
def test_simulation_engine_and_in_process_agree_bit_for_bit(make):
    quiet_flower()
    app = make_client_app(SPEC, Wave)
    theta = flatten(init_params(SPEC, np.random.default_rng(1)))
    fast_strategy = make()
    fast, _ = run_in_process(fast_strategy, app, 4, theta, 3)
    engine_strategy = make()
    engine, result = run_in_simulation_engine(engine_strategy, app, 4, theta, 3)
    assert engine_strategy.counters.rounds == 3
    assert engine_strategy.counters.rejected_replies == 0
    assert len(result.train_metrics_clientapp) == 3
    assert not np.array_equal(fast, theta)
    np.testing.assert_array_equal(engine, fast)


def _reptile():
    plan = RoundPlan("batch", 0.05, support_size=6, batch_size=3)
    return Reptile(plan, num_devices=5, clients_per_round=DEVICES_PER_ROUND, seed=2, num_rounds=4)


def test_concurrent_delivery_gives_the_sequential_numbers():
    """Every call of a round must wait at a barrier for the round's other devices: it only
    passes if the grid really delivers them at the same time (no timing assert)."""
    quiet_flower()
    theta = flatten(init_params(SPEC, np.random.default_rng(1)))
    app_call = client_app_call(make_client_app(SPEC, Wave))
    sequential, _ = run_in_process(_reptile(), app_call, 5, theta, 4)

    barrier = threading.Barrier(DEVICES_PER_ROUND, timeout=30)

    def remote_device(message):
        barrier.wait()  # BrokenBarrierError (an error reply) if calls came one by one
        return app_call(message)

    strategy = _reptile()
    concurrent, _ = run_in_process(
        strategy, remote_device, 5, theta, 4, max_concurrent=DEVICES_PER_ROUND
    )
    assert strategy.counters.rejected_replies == 0
    assert strategy.counters.accepted_replies == 4 * DEVICES_PER_ROUND
    np.testing.assert_array_equal(concurrent, sequential)


def test_max_concurrent_must_be_positive():
    with pytest.raises(UsageError):
        run_in_process(_reptile(), lambda m: m, 5, np.zeros(SPEC.num_params, np.float32), 1,
                       max_concurrent=0)  # fmt: skip
