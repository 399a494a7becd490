"""Cost of the update checks and robust aggregates per round, and memory under a chunk flood.

Run:  .venv/bin/python benchmarks/bench_faults.py [--repeats N] [--rounds R]

1. ``aggregate_train`` alone (the server's part of a round) on the sine head (1,761
   parameters) and a 64k-parameter vector, for M = 1 and M = 5 replies: plain path
   (no bound, mean) vs the default (norm bound, mean) vs bound + median / trimmed mean.
   Prints microseconds per round and the ratio to the plain path.
2. A whole in-process TinyReptile round on sine (device work included): plain vs default.
3. 300 chunk starts announcing 1 MiB each into one ChunkAssembler: bytes sent, bytes held
   (tracemalloc), pending messages; before issue 9 the assembler allocated the announced
   1 MiB per start (300 MiB).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from tinyfleet.device import wire
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.wire import Chunk
from tinyfleet.device.wire.contract import KEY_DEVICE_INDEX, KEY_ROUND, RoundPlan
from tinyfleet.server.grid import InProcessGrid, client_app_call
from tinyfleet.server.run import quiet_flower, run_in_process
from tinyfleet.server.strategies import Reptile, TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

VARIANTS: dict[str, dict[str, Any]] = {
    "plain (no bound, mean)": {"max_update_ratio": None},
    "default (bound, mean)": {},
    "bound + median": {"aggregate": "median"},
    "bound + trimmed-mean": {"aggregate": "trimmed-mean"},
}


def _near(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (theta + 0.01 * rng.standard_normal(theta.shape)).astype(np.float32)


def aggregate_cost(size: int, clients: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(size).astype(np.float32)
    phis = [_near(theta, rng) for _ in range(clients)]

    def device(message: Message) -> Message:
        config = message.content["config"]
        index = int(config[KEY_DEVICE_INDEX])  # type: ignore[arg-type]
        metrics = {"device-index": index, "round": int(config[KEY_ROUND]), "num-examples": 1}  # type: ignore[arg-type]
        content = RecordDict(
            {"arrays": ArrayRecord([phis[index]]), "metrics": MetricRecord(metrics)}  # type: ignore[arg-type]
        )
        return Message(content, reply_to=message)

    out = {}
    plan = RoundPlan("batch", 0.02, support_size=10)
    for name, options in VARIANTS.items():
        strategy = Reptile(
            plan, num_devices=clients, clients_per_round=clients, num_rounds=10, **options
        )
        grid = InProcessGrid(device, clients)
        arrays = ArrayRecord([theta])
        messages = strategy.configure_train(1, arrays, ConfigRecord(), grid)
        replies = list(grid.send_and_receive(messages))
        strategy.aggregate_train(1, replies)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            strategy.aggregate_train(1, replies)
        out[name] = (time.perf_counter() - started) / repeats * 1e6
    return out


def round_cost(rounds: int) -> dict[str, float]:
    use_case = get_use_case("sine")
    spec = use_case.head_spec

    def stream(seed: int, index: int) -> Any:
        return use_case.sample_task(device_task_rng(seed, index, "train"), "train")

    initial = flatten(init_params(spec, np.random.default_rng(0)))
    plan = RoundPlan("online", 0.02, k=10)
    out = {}
    for name in ("plain (no bound, mean)", "default (bound, mean)"):
        strategy = TinyReptile(plan, num_devices=100, num_rounds=rounds, **VARIANTS[name])
        call = client_app_call(make_client_app(spec, stream))
        started = time.perf_counter()
        run_in_process(strategy, call, 100, initial, rounds)
        out[name] = (time.perf_counter() - started) / rounds * 1e6
    return out


def chunk_flood(starts: int = 300) -> dict[str, int]:
    assembler = wire.ChunkAssembler(max_pending=256)
    payloads = [
        wire.encode_chunk(Chunk(1, i, f"d-{i % 3:04d}", 0, 20_000, 1 << 20, 0, b"x" * 56))
        for i in range(starts)
    ]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for payload in payloads:
        assembler.add(payload)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "starts": starts,
        "announced_bytes": starts << 20,
        "sent_bytes": sum(len(p) for p in payloads),
        "held_bytes_tracemalloc": held - before,
        "peak_bytes_tracemalloc": peak - before,
        "pending_messages": assembler.pending_messages,
        "pending_chunk_bytes": assembler.pending_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    quiet_flower()
    print("1. aggregate_train per round (us), ratio to the plain path")
    for size in (1761, 65536):
        for clients in (1, 5):
            cost = aggregate_cost(size, clients, args.repeats)
            plain = cost["plain (no bound, mean)"]
            for name, us in cost.items():
                print(
                    f"   {size:>6} params  M={clients}  {name:<24} {us:9.1f} us  x{us / plain:.2f}"
                )
    print("2. whole in-process TinyReptile round on sine (us), ratio to the plain path")
    cost = round_cost(args.rounds)
    plain = cost["plain (no bound, mean)"]
    for name, us in cost.items():
        print(f"   {name:<24} {us:9.1f} us  x{us / plain:.3f}")
    print("3. chunk flood")
    for key, value in chunk_flood().items():
        print(f"   {key:<24} {value}")


if __name__ == "__main__":
    main()
