"""Simulation throughput: device-rounds per second, measured in one run.

Compares, on the sine use case (TinyReptile, one device per round, k = 10 online steps):

* baseline: a bare numpy loop doing the same device work and outer step, no Flower;
* the in-process Flower path (``InProcessGrid`` + Flower's ``Strategy.start()``);
* Flower's Simulation runtime (``run_simulation``, Ray backend) with ``--engine-nodes``
  virtual SuperNodes (default 1,000 and 10,000), timed between rounds (start-up reported
  apart), against the in-process Grid with the same number of nodes; the final parameters
  of both must be identical; peak resident memory of the whole process tree (Ray's
  processes included) is sampled from /proc. ``--engine-rounds 0`` skips it.

Usage: ``.venv/bin/python benchmarks/bench_simulation.py [--rounds 2000] [--engine-rounds 6]
[--engine-nodes 1000,10000]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import threading
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
    rounds: int,
    fleet: Fleet,
    plan: RoundPlan,
    theta: np.ndarray,
    engine: bool,
    nodes: int = DEVICES,
) -> tuple[float, float, str]:
    """``(device-rounds/s after round 1, seconds until round 1 ended, final hash)``; the
    latter includes the runtime's start-up (Ray, actors), which happens in round 1."""
    stamps: list[float] = []

    def evaluate_fn(server_round, arrays):  # type: ignore[no-untyped-def]
        stamps.append(time.perf_counter())
        return None

    app = make_client_app(fleet.use_case.head_spec, fleet.stream_for_device())
    strategy = TinyReptile(plan, num_devices=nodes, seed=SEED, num_rounds=rounds)
    runner = run_in_simulation_engine if engine else run_in_process
    start = time.perf_counter()
    final, _ = runner(strategy, app, nodes, theta, rounds, evaluate_fn)
    # evaluate_fn runs before round 1 and after every round; skip round 1 (the engine
    # starts its actors then).
    rate = (rounds - 1) / (stamps[-1] - stamps[1])
    return rate, stamps[1] - start, hashlib.sha256(final.tobytes()).hexdigest()[:16]


def _tree_rss_mib() -> float:
    """Resident memory of this process and all its descendants (Ray's too), MiB."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def engine_at_scale(
    nodes: int, rounds: int, fleet: Fleet, plan: RoundPlan, theta: np.ndarray
) -> None:
    """The Simulation runtime with ``nodes`` virtual SuperNodes vs the in-process Grid."""
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], _tree_rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    wall = time.perf_counter()
    engine, startup, engine_hash = flower_path(rounds, fleet, plan, theta, True, nodes)
    wall = time.perf_counter() - wall
    done.set()
    sampler.join()
    inproc, _, inproc_hash = flower_path(max(rounds, 200), fleet, plan, theta, False, nodes)
    _, _, same_rounds_hash = flower_path(rounds, fleet, plan, theta, False, nodes)
    print(
        f"Simulation runtime {nodes} nodes {engine:10.1f} device-rounds/s  "
        f"in-process Grid {nodes} nodes {inproc:.1f}  ratio {engine / inproc:.4f}  "
        f"(start-up + round 1 {startup:.1f} s, {rounds} rounds {wall:.1f} s wall, peak RSS "
        f"{peak[0]:.0f} MiB; same parameters as in process: {engine_hash == same_rounds_hash})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="rounds for numpy/in-process")
    parser.add_argument("--engine-rounds", type=int, default=6, help="Simulation runtime rounds")
    parser.add_argument(
        "--engine-nodes", default="1000,10000", help="virtual SuperNodes, comma-separated"
    )
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
        inprocs.append(flower_path(per_block, fleet, plan, theta, engine=False)[0])
    base, inproc = float(np.median(bases)), float(np.median(inprocs))
    print(f"bare numpy loop          {base:10.1f} device-rounds/s  (baseline)")
    print(f"Flower, in-process Grid  {inproc:10.1f} device-rounds/s  ratio {inproc / base:.3f}")
    if args.engine_rounds > 0:
        for nodes in (int(n) for n in args.engine_nodes.split(",") if n):
            engine_at_scale(nodes, args.engine_rounds, fleet, plan, theta)


if __name__ == "__main__":
    main()
