"""Simulation throughput: device-rounds per second, measured in one run.

Compares, on the sine use case (TinyReptile, one device per round, k = 10 online steps):

* baseline: a bare numpy loop doing the same device work and outer step, no Flower;
* the in-process Flower path (``InProcessGrid`` + Flower's ``Strategy.start()``);
* Flower's Simulation Engine (``run_simulation``), timed between rounds (start-up excluded;
  ``--engine-rounds 0`` skips it).

Usage: ``.venv/bin/python benchmarks/bench_simulation.py [--rounds 2000] [--engine-rounds 20]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinyfleet.device.rounds import round_rng, run_local_round
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.server.run import quiet_flower, run_in_process, run_in_simulation_engine
from tinyfleet.server.strategies import TinyReptile, annealed_beta, outer_step
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.fleet import Fleet
from tinyfleet.simulations.runner import initial_head
from tinyfleet.simulations.usecase import get_use_case

DEVICES = 100
SEED = 0


def bare_numpy(rounds: int, fleet: Fleet, plan: RoundPlan, theta: np.ndarray) -> float:
    spec = fleet.use_case.head_spec
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    for server_round in range(1, rounds + 1):
        device = int(rng.integers(DEVICES))
        phi, _ = run_local_round(
            theta, spec, fleet.stream(SEED, device), plan, round_rng(SEED, device, server_round)
        )
        theta = outer_step(theta, phi, annealed_beta(1.0, server_round, rounds))
    return rounds / (time.perf_counter() - start)


def flower_path(
    rounds: int, fleet: Fleet, plan: RoundPlan, theta: np.ndarray, engine: bool
) -> float:
    stamps: list[float] = []

    def evaluate_fn(server_round, arrays):  # type: ignore[no-untyped-def]
        stamps.append(time.perf_counter())
        return None

    app = make_client_app(fleet.use_case.head_spec, fleet.stream_for_device())
    strategy = TinyReptile(plan, num_devices=DEVICES, seed=SEED, num_rounds=rounds)
    runner = run_in_simulation_engine if engine else run_in_process
    runner(strategy, app, DEVICES, theta, rounds, evaluate_fn)
    # evaluate_fn runs before round 1 and after every round; skip round 1 (the engine
    # starts its actors then).
    return (rounds - 1) / (stamps[-1] - stamps[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="rounds for numpy/in-process")
    parser.add_argument("--engine-rounds", type=int, default=20, help="Simulation Engine rounds")
    args = parser.parse_args()
    quiet_flower()
    use_case = get_use_case("sine")
    fleet = Fleet(use_case, None)
    plan = RoundPlan("online", 0.02, k=10)
    theta = initial_head(use_case, SEED)
    for device in range(DEVICES):  # build the tasks outside the timed loops
        fleet.stream(SEED, device)

    # The machine is shared and noisy: alternate the two in blocks of rounds and take
    # the median rate of each, so a burst of load hits both alike.
    blocks = max(1, args.rounds // 400)
    per_block = max(2, args.rounds // blocks)
    bases, inprocs = [], []
    for _ in range(blocks):
        bases.append(bare_numpy(per_block, fleet, plan, theta))
        inprocs.append(flower_path(per_block, fleet, plan, theta, engine=False))
    base, inproc = float(np.median(bases)), float(np.median(inprocs))
    print(f"bare numpy loop          {base:10.1f} device-rounds/s  (baseline)")
    print(f"Flower, in-process Grid  {inproc:10.1f} device-rounds/s  ratio {inproc / base:.3f}")
    if args.engine_rounds > 0:
        engine = flower_path(args.engine_rounds, fleet, plan, theta, engine=True)
        print(
            f"Flower Simulation Engine {engine:10.1f} device-rounds/s  ratio {engine / base:.4f}"
            f"  (in-process is {inproc / engine:.0f}x faster)"
        )


if __name__ == "__main__":
    main()
