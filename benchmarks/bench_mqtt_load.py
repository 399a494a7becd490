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
   once and waits for all replies, alternately from one thread
   (``MqttGateway.request_many``) and from ``--fanout-threads`` threads each calling
   ``request``; prints messages/s of each;
4. checks that all devices are still connected at the end.

Numbers are printed, never asserted (timings on a shared 2-core machine are noisy).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` (0 if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stream(seed: int, index: int) -> Any:
    from tinyfleet.simulations.seeding import device_task_rng
    from tinyfleet.simulations.usecase import get_use_case

    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def _worker(
    host: str, port: int, fleet: str, indices: list[int], stop: Any, ready: Any, qos: int = 1
) -> None:
    """A process holding many device clients until ``stop`` is set."""
    _raise_fd_limit()
    from tinyfleet.device.mqtt_client import DeviceSettings, MqttDevice, RoundTaskHandler
    from tinyfleet.device.wire.topics import device_ids
    from tinyfleet.simulations.usecase import get_use_case

    spec = get_use_case("sine").head_spec
    ids = device_ids(max(indices) + 1)
    devices = []
    for i in indices:
        settings = DeviceSettings(
            ids[i], host, port, fleet=fleet, reconnect_max_s=2.0, update_qos=qos
        )
        devices.append(MqttDevice(settings, RoundTaskHandler(spec, _stream, i)).start(wait=None))
    ready.put(len(devices))
    cpu = time.process_time()
    stop.wait()
    cpu = time.process_time() - cpu  # every thread of this process, while online
    replies = sum(d.counters.replies for d in devices)
    for d in devices:
        d.stop(graceful=False)
    ready.put((replies, cpu))


def _fleet_round(
    gateway: Any, ids: list[str], plan: Any, args: Any, round_: int, theta: list, mode: str
) -> tuple[float, int]:
    """One task to EVERY device, wait for all replies: ``(seconds, replies)``.

    ``one thread``: :meth:`MqttGateway.request_many` (publish all, then wait);
    ``threads``: ``--fanout-threads`` threads each calling :meth:`MqttGateway.request`.
    """
    config = {**plan.to_config(), "seed": args.seed, "round": round_}
    tasks = [(d, round_, {**config, "device-index": i}, theta) for i, d in enumerate(ids)]
    start = time.perf_counter()
    if mode == "one thread":
        ok = sum(
            not isinstance(r, Exception) and bool(r.arrays) for r in gateway.request_many(tasks)
        )
    else:

        def one(task: tuple) -> bool:
            d, rnd, fields, arrays = task
            return bool(gateway.request(d, round=rnd, fields=fields, arrays=arrays).arrays)

        with ThreadPoolExecutor(args.fanout_threads) as pool:
            ok = sum(pool.map(one, tasks))
    return time.perf_counter() - start, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=4, help="worker processes for devices")
    parser.add_argument("--rounds", type=int, default=200, help="TinyReptile rounds")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks of rounds")
    parser.add_argument("--fanout-rounds", type=int, default=3)
    parser.add_argument("--fanout-threads", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1), help="tasks and replies")
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
    print(
        f"devices {n} in {args.procs} processes; fd limit {fds}; rounds {args.rounds}; "
        f"QoS {args.qos}"
    )

    ctx = mp.get_context("spawn")
    with ManagedBroker(anonymous=True) as broker:  # load, not auth
        stop, ready = ctx.Event(), ctx.Queue()
        chunks = [list(range(n))[p :: args.procs] for p in range(args.procs)]
        procs = [
            ctx.Process(
                target=_worker, args=(broker.host, broker.port, fleet, c, stop, ready, args.qos)
            )
            for c in chunks
            if c
        ]
        t0 = time.perf_counter()
        broker_cpu, gateway_cpu = _cpu_seconds(broker.pid), -time.process_time()
        for p in procs:
            p.start()
        try:
            settings = GatewaySettings(fleet=fleet, round_timeout=60, retries=1, task_qos=args.qos)
            with MqttGateway(broker.address(), settings) as gateway:
                gateway.wait_for_devices(ids, timeout=300)
                connect_s = time.perf_counter() - t0
                print(
                    f"all {n} devices online after {connect_s:.1f} s "
                    f"(process start + import + connect)"
                )

                call = GatewayClientCall(gateway, route_by_config(ids))
                app = make_client_app(spec, _stream)
                # Alternate MQTT and in-process runs of the same rounds in blocks (the
                # machine is shared: a burst of load then hits both alike).
                per_block = max(2, args.rounds // args.blocks)
                mqtt_s = inproc_s = 0.0
                # CPU seconds too: under load, wall time flatters the MQTT path (its work
                # is spread over more processes, which get more of the shared CPUs).
                relay_cpu = inproc_cpu = broker_rounds_cpu = 0.0
                ratios, same = [], True
                for _ in range(args.blocks):
                    strategy = TinyReptile(
                        plan, num_devices=n, seed=args.seed, num_rounds=per_block
                    )
                    c1, b1 = time.process_time(), _cpu_seconds(broker.pid)
                    t1 = time.perf_counter()
                    mqtt_final, _ = run_in_process(strategy, call, n, initial, per_block)
                    m = time.perf_counter() - t1
                    relay_cpu += time.process_time() - c1
                    broker_rounds_cpu += _cpu_seconds(broker.pid) - b1
                    strategy = TinyReptile(
                        plan, num_devices=n, seed=args.seed, num_rounds=per_block
                    )
                    c2 = time.process_time()
                    t2 = time.perf_counter()
                    inproc_final, _ = run_in_process(strategy, app, n, initial, per_block)
                    i = time.perf_counter() - t2
                    inproc_cpu += time.process_time() - c2
                    mqtt_s, inproc_s = mqtt_s + m, inproc_s + i
                    ratios.append(m / i)
                    same = same and mqtt_final.tobytes() == inproc_final.tobytes()
                total = per_block * args.blocks
                before = gateway.counters.as_dict()
                msgs = before["publishes"] + before["replies"]
                print(
                    f"TinyReptile over MQTT : {total} rounds in {mqtt_s:.2f} s = "
                    f"{total / mqtt_s:.1f} rounds/s, {msgs / mqtt_s:.1f} messages/s"
                )
                print(
                    f"TinyReptile in process: {total} rounds in {inproc_s:.2f} s = "
                    f"{total / inproc_s:.1f} rounds/s"
                )
                print(
                    f"overhead ratio MQTT / in-process (same work): {mqtt_s / inproc_s:.2f}x "
                    f"(blocks of {per_block} rounds: {min(ratios):.2f}-{max(ratios):.2f}x); "
                    f"per round +{(mqtt_s - inproc_s) / total * 1e3:.2f} ms"
                )
                print(f"final parameters bit-identical: {same}")

                theta = [wire.float32_array("0", initial)]
                # Fleet-wide rounds, alternating the two ways of waiting for the replies
                # (a burst of load on the shared machine hits both alike).
                for r in range(args.fanout_rounds):
                    for mode in ("one thread", "threads"):
                        round_ = 100000 + 2 * r + (mode == "threads")
                        took, ok = _fleet_round(gateway, ids, plan, args, round_, theta, mode)
                        print(
                            f"fleet-wide round {r + 1} ({mode}): {ok}/{n} replies in "
                            f"{took:.2f} s = {2 * n / took:.0f} messages/s"
                        )
                gateway_cpu += time.process_time() - inproc_cpu  # not the in-process runs
                online = len(gateway.online_devices() & set(ids))
                c = gateway.counters.as_dict()
                print(
                    f"still online at the end: {online}/{n}; gateway counters: "
                    f"timeouts {c['timeouts']}, retries {c['retries']}, "
                    f"duplicates {c['duplicates']}, malformed {c['malformed']}"
                )
        finally:
            stop.set()
            answered, device_cpu = 0, 0.0
            for _ in procs:
                ready.get(timeout=60)  # the "connected" count
            for _ in procs:
                replies, cpu = ready.get(timeout=120)
                answered, device_cpu = answered + replies, device_cpu + cpu
            for p in procs:
                p.join(timeout=60)
            broker_cpu = _cpu_seconds(broker.pid) - broker_cpu
        print(f"device-side replies: {answered}")
        # CPU per answered task bounds messages/s on this machine whatever the load:
        # each task is 2 messages, and the CPUs can at best all work in parallel.
        per_task = (device_cpu + broker_cpu + gateway_cpu) / max(answered, 1)
        # The device side's CPU per task is the same work in the TinyReptile and the
        # fleet-wide rounds (one TRAIN task, k steps): the whole run's average serves both.
        mqtt_cpu = relay_cpu + broker_rounds_cpu + total * device_cpu / max(answered, 1)
        print(
            f"CPU per TinyReptile round: over MQTT {mqtt_cpu / total * 1e3:.2f} ms (gateway "
            f"process {relay_cpu / total * 1e3:.2f}, broker {broker_rounds_cpu / total * 1e3:.2f}"
            f", device {device_cpu / max(answered, 1) * 1e3:.2f}), in process "
            f"{inproc_cpu / total * 1e3:.2f} ms: CPU ratio {mqtt_cpu / inproc_cpu:.2f}x"
        )
        print(
            f"CPU per answered task: devices {device_cpu / max(answered, 1) * 1e3:.2f} ms, "
            f"broker {broker_cpu / max(answered, 1) * 1e3:.2f} ms, gateway "
            f"{gateway_cpu / max(answered, 1) * 1e3:.2f} ms; bound on {os.cpu_count()} CPUs: "
            f"{2 * (os.cpu_count() or 1) / per_task:.0f} messages/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
