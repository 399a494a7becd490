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
4. The same floods against a real MqttGateway through a real Mosquitto (secure default:
   the flooders log in with stolen device credentials, each on its own update topic),
   sent from another process so that this process's memory is the gateway's: (a) issue
   9's row, 300 starts announcing 1 MiB, 56 data bytes each (3 devices); (b) a flood that
   sends real chunk data, 40 devices x 2 partial 1 MiB messages (4 of 5 chunks: 64 MiB
   sent). Prints the gateway's held chunk bytes and pending messages against the stated
   bound (32 MiB of chunk data, 256 messages, 2 MiB per device) and the process RSS
   growth (current and peak, /proc/self/status) against 32 MiB + 16 MiB of headroom for
   the interpreter, paho and the allocator. Before issue 9 row (a) took the server from
   97 MB to 362 MB. Skipped with --no-broker or when mosquitto is not installed.
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


GATEWAY_BOUND_BYTES = 32 * 1024 * 1024  # the gateway's max_total_bytes (server/gateway.py)
RSS_HEADROOM_BYTES = 16 * 1024 * 1024


def _memory_kib() -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of this process in KiB."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def _flood_worker(
    host: str, port: int, logins: list[tuple[str, str]], spec: tuple[int, ...]
) -> None:
    """Publish chunk starts as each device in ``logins`` (its own update topic)."""
    import paho.mqtt.client as mqtt

    messages, chunks, data = spec
    for device_id, password in logins:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id)
        client.username_pw_set(device_id, password)
        client.connect(host, port)
        client.loop_start()
        topic = wire.topic("flood", device_id, "update")
        infos = []
        for msg in range(messages):
            for index in range(chunks):
                chunk = Chunk(1, msg, device_id, index, 5, 1 << 20, index * data, b"x" * data)
                infos.append(client.publish(topic, wire.encode_chunk(chunk), qos=1))
        for info in infos:
            info.wait_for_publish(30)
        client.disconnect()
        client.loop_stop()


def gateway_flood() -> list[dict[str, int]]:
    """Floods (a) and (b) of section 4 against a real gateway; one dict per flood."""
    import multiprocessing as mp

    from tinyfleet.errors import MissingToolError
    from tinyfleet.server.broker import ManagedBroker
    from tinyfleet.server.gateway import GatewaySettings, MqttGateway

    # (name, devices, messages per device, chunks per message, data bytes per chunk)
    floods = [("a: issue row, 300 starts x 1 MiB announced", 3, 100, 1, 56),
              ("b: 40 devices x 2 x 4/5 of 1 MiB", 40, 2, 4, 209_715)]  # fmt: skip
    ids = [f"flood-{i:04d}" for i in range(40)]
    out = []
    try:
        broker = ManagedBroker(device_ids=ids).start()
    except MissingToolError as error:
        print(f"   skipped: {error}")
        return out
    ctx = mp.get_context("spawn")
    with broker:
        users = broker.users or {}
        for name, devices, messages, chunks, data in floods:
            with MqttGateway(broker.gateway_address(), GatewaySettings(fleet="flood")) as gw:
                time.sleep(0.5)
                rss0, hwm0 = _memory_kib()
                logins = [(d, users[d]) for d in ids[:devices]]
                sample = wire.encode_chunk(Chunk(1, 0, ids[0], 0, 5, 1 << 20, 0, b"x" * data))
                proc = ctx.Process(
                    target=_flood_worker,
                    args=(broker.host, broker.port, logins, (messages, chunks, data)),
                )
                proc.start()
                proc.join(300)
                time.sleep(1.0)  # the gateway's network thread drains the last messages
                rss1, hwm1 = _memory_kib()
                assembler = gw._assembler  # noqa: SLF001 - the benchmark reads its state
                out.append({
                    "flood": name,  # type: ignore[dict-item]
                    "sent_bytes": devices * messages * chunks * len(sample),
                    "announced_bytes": devices * messages << 20,
                    "held_chunk_bytes": assembler.pending_bytes,
                    "pending_messages": assembler.pending_messages,
                    "evicted": assembler.counters.evicted,
                    "rss_growth_kib": rss1 - rss0,
                    "peak_rss_growth_kib": max(hwm1 - hwm0, 0),
                    "rss_before_kib": rss0,
                })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--no-broker", action="store_true", help="skip section 4")
    parser.add_argument("--only-flood", action="store_true", help="sections 3 and 4 only")
    args = parser.parse_args()
    quiet_flower()
    if not args.only_flood:
        print("1. aggregate_train per round (us), ratio to the plain path")
        for size in (1761, 65536):
            for clients in (1, 5):
                cost = aggregate_cost(size, clients, args.repeats)
                plain = cost["plain (no bound, mean)"]
                for name, us in cost.items():
                    print(f"   {size:>6} params  M={clients}  {name:<24} {us:9.1f} us"
                          f"  x{us / plain:.2f}")  # fmt: skip
        print("2. whole in-process TinyReptile round on sine (us), ratio to the plain path")
        cost = round_cost(args.rounds)
        plain = cost["plain (no bound, mean)"]
        for name, us in cost.items():
            print(f"   {name:<24} {us:9.1f} us  x{us / plain:.3f}")
    print("3. chunk flood (one ChunkAssembler, default caps)")
    for key, value in chunk_flood().items():
        print(f"   {key:<24} {value}")
    if args.no_broker:
        return
    print(
        f"4. chunk flood against the MQTT gateway (bound: held chunk bytes <= "
        f"{GATEWAY_BOUND_BYTES >> 20} MiB, <= 256 messages; RSS growth <= "
        f"{(GATEWAY_BOUND_BYTES + RSS_HEADROOM_BYTES) >> 20} MiB)"
    )
    for row in gateway_flood():
        within = (
            row["held_chunk_bytes"] <= GATEWAY_BOUND_BYTES
            and row["pending_messages"] <= 256
            and max(row["rss_growth_kib"], row["peak_rss_growth_kib"]) * 1024
            <= GATEWAY_BOUND_BYTES + RSS_HEADROOM_BYTES
        )
        print(f"   {row.pop('flood')}: {'WITHIN' if within else 'OVER'} the bound")
        for key, value in row.items():
            print(f"      {key:<22} {value:,}")


if __name__ == "__main__":
    main()
