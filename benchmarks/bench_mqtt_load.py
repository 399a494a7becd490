"""Load run: hundreds of MQTT device clients through one Mosquitto, rounds keep completing.

    .venv/bin/python benchmarks/bench_mqtt_load.py [--devices 500] [--rounds 200]

What it does, all on this machine:

1. starts a managed Mosquitto and ``--devices`` device clients (paho, one network thread
   each) spread over ``--procs`` worker processes; waits until every one is online;
2. runs TinyReptile (one device per round, k online SGD steps on the sine MLP) for
   ``--rounds`` rounds through Flower's ``Strategy.start()`` + the MQTT gateway, and the
   SAME run in process (ClientApp called directly); prints rounds/s, messages/s and the
   MQTT/in-process time ratio, and checks the final parameters are bit-identical;
3. runs ``--fanout-rounds`` fleet-wide rounds: the gateway sends a task to EVERY device at
   once (``--fanout-threads`` concurrent requests) and waits for all replies; prints
   messages/s;
4. checks that all devices are still connected at the end.

Numbers are printed, never asserted (timings on a shared 2-core machine are noisy).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _stream(seed: int, index: int) -> Any:
    from tinyfleet.simulations.seeding import device_task_rng
    from tinyfleet.simulations.usecase import get_use_case

    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def _worker(host: str, port: int, fleet: str, indices: list[int], stop: Any, ready: Any) -> None:
    """A process holding many device clients until ``stop`` is set."""
    _raise_fd_limit()
    from tinyfleet.device.mqtt_client import DeviceSettings, MqttDevice, RoundTaskHandler
    from tinyfleet.device.wire.topics import device_ids
    from tinyfleet.simulations.usecase import get_use_case

    spec = get_use_case("sine").head_spec
    ids = device_ids(max(indices) + 1)
    devices = []
    for i in indices:
        settings = DeviceSettings(ids[i], host, port, fleet=fleet, reconnect_max_s=2.0)
        devices.append(MqttDevice(settings, RoundTaskHandler(spec, _stream, i)).start(wait=None))
    ready.put(len(devices))
    stop.wait()
    replies = sum(d.counters.replies for d in devices)
    for d in devices:
        d.stop(graceful=False)
    ready.put(replies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--procs", type=int, default=4, help="worker processes for devices")
    parser.add_argument("--rounds", type=int, default=200, help="TinyReptile rounds")
    parser.add_argument("--fanout-rounds", type=int, default=3)
    parser.add_argument("--fanout-threads", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fds = _raise_fd_limit()

    from tinyfleet.device import wire
    from tinyfleet.device.head import flatten, init_params
    from tinyfleet.device.wire.contract import RoundPlan
    from tinyfleet.device.wire.topics import device_ids
    from tinyfleet.server.broker import ManagedBroker
    from tinyfleet.server.gateway import GatewaySettings, MqttGateway
    from tinyfleet.server.gateway_flower import GatewayClientCall, route_by_config
    from tinyfleet.server.run import quiet_flower, run_in_process
    from tinyfleet.server.strategies import TinyReptile
    from tinyfleet.simulations.clientapp import make_client_app
    from tinyfleet.simulations.usecase import get_use_case

    quiet_flower()
    spec = get_use_case("sine").head_spec
    initial = flatten(init_params(spec, np.random.default_rng(args.seed)))
    plan = RoundPlan("online", inner_lr=0.02, k=args.k)
    n = args.devices
    ids = device_ids(n)
    fleet = "load"
    print(f"devices {n} in {args.procs} processes; fd limit {fds}; rounds {args.rounds}")

    ctx = mp.get_context("spawn")
    with ManagedBroker(anonymous=True) as broker:  # load, not auth
        stop, ready = ctx.Event(), ctx.Queue()
        chunks = [list(range(n))[p :: args.procs] for p in range(args.procs)]
        procs = [
            ctx.Process(target=_worker, args=(broker.host, broker.port, fleet, c, stop, ready))
            for c in chunks
            if c
        ]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        try:
            settings = GatewaySettings(fleet=fleet, round_timeout=60, retries=1)
            with MqttGateway(broker.address(), settings) as gateway:
                gateway.wait_for_devices(ids, timeout=300)
                connect_s = time.perf_counter() - t0
                print(
                    f"all {n} devices online after {connect_s:.1f} s "
                    f"(process start + import + connect)"
                )

                call = GatewayClientCall(gateway, route_by_config(ids))
                strategy = TinyReptile(plan, num_devices=n, seed=args.seed, num_rounds=args.rounds)
                t1 = time.perf_counter()
                mqtt_final, _ = run_in_process(strategy, call, n, initial, args.rounds)
                mqtt_s = time.perf_counter() - t1
                before = gateway.counters.as_dict()

                strategy = TinyReptile(plan, num_devices=n, seed=args.seed, num_rounds=args.rounds)
                app = make_client_app(spec, _stream)
                t2 = time.perf_counter()
                inproc_final, _ = run_in_process(strategy, app, n, initial, args.rounds)
                inproc_s = time.perf_counter() - t2

                msgs = before["publishes"] + before["replies"]
                print(
                    f"TinyReptile over MQTT : {args.rounds} rounds in {mqtt_s:.2f} s = "
                    f"{args.rounds / mqtt_s:.1f} rounds/s, {msgs / mqtt_s:.1f} messages/s"
                )
                print(
                    f"TinyReptile in process: {args.rounds} rounds in {inproc_s:.2f} s = "
                    f"{args.rounds / inproc_s:.1f} rounds/s"
                )
                print(
                    f"overhead ratio MQTT / in-process (same work): {mqtt_s / inproc_s:.2f}x; "
                    f"per round +{(mqtt_s - inproc_s) / args.rounds * 1e3:.2f} ms"
                )
                print(
                    f"final parameters bit-identical: "
                    f"{mqtt_final.tobytes() == inproc_final.tobytes()}"
                )

                theta = [wire.float32_array("0", initial)]
                fan_times = []
                for r in range(args.fanout_rounds):
                    config = {**plan.to_config(), "seed": args.seed}

                    def one(index: int, r: int = r, config: dict = config) -> bool:
                        fields = {**config, "round": 100000 + r, "device-index": index}
                        reply = gateway.request(
                            ids[index], round=100000 + r, fields=fields, arrays=theta
                        )
                        return bool(reply.arrays)

                    t3 = time.perf_counter()
                    with ThreadPoolExecutor(args.fanout_threads) as pool:
                        ok = sum(pool.map(one, range(n)))
                    fan_times.append(time.perf_counter() - t3)
                    print(
                        f"fleet-wide round {r + 1}: {ok}/{n} replies in {fan_times[-1]:.2f} s "
                        f"= {2 * n / fan_times[-1]:.0f} messages/s"
                    )
                online = len(gateway.online_devices() & set(ids))
                c = gateway.counters.as_dict()
                print(
                    f"still online at the end: {online}/{n}; gateway counters: "
                    f"timeouts {c['timeouts']}, retries {c['retries']}, "
                    f"duplicates {c['duplicates']}, malformed {c['malformed']}"
                )
        finally:
            stop.set()
            answered = 0
            for _ in procs:
                ready.get(timeout=60)  # the "connected" count
            for _ in procs:
                answered += ready.get(timeout=120)
            for p in procs:
                p.join(timeout=60)
        print(f"device-side replies: {answered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
