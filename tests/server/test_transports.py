"""The strategies inside Flower's Simulation Engine give the in-process numbers, bit for bit."""

import numpy as np
import pytest

from tinyfleet.device.head import HeadSpec, flatten, init_params
from tinyfleet.device.rounds import RoundPlan
from tinyfleet.server.clientapp import make_client_app
from tinyfleet.server.run import quiet_flower, run_in_process, run_in_simulation_engine
from tinyfleet.server.strategies import FedAvg, Reptile, TinyReptile

SPEC = HeadSpec((1, 6, 1), "tanh", "mse")


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
