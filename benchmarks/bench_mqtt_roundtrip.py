"""One device, one gateway: what a single MQTT round trip costs in wall time and in CPU.

    .venv/bin/python benchmarks/bench_mqtt_roundtrip.py [--requests 1000]

A managed Mosquitto, one device client in its own process and the gateway in this one;
``--requests`` sequential TinyReptile tasks (sine, k = 10), answered alternately in
blocks by an *echo* handler (returns theta: the transport alone) and by the real round
handler. Prints per round trip: wall time, the gateway process's CPU and the device
process's CPU. The echo figures are the MQTT transport's own cost (paho's threaded loop,
the codec, the broker hop) against which the round's work is weighed
(docs/performance.md). Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from typing import Any

import numpy as np


def _stream(seed: int, index: int) -> Any:
    from tinyfleet.simulations.seeding import device_task_rng
    from tinyfleet.simulations.usecase import get_use_case

    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def _device(host: str, port: int, echo: Any, stop: Any, cpu: Any) -> None:
    """The device: answers with theta while ``echo`` is set, else trains; publishes its
    process's CPU seconds in ``cpu`` every 20 ms (-1 until it is online)."""
    from tinyfleet.device.mqtt_client import DeviceSettings, MqttDevice, RoundTaskHandler
    from tinyfleet.simulations.usecase import get_use_case

    real = RoundTaskHandler(get_use_case("sine").head_spec, _stream)

    def handler(task: Any) -> Any:
        return ({"loss": 0.0}, list(task.arrays)) if echo.is_set() else real(task)

    device = MqttDevice(DeviceSettings("dev-0", host, port, fleet="rt"), handler).start()
    while not stop.wait(0.02):
        cpu.value = time.process_time()
    device.stop(graceful=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=4)
    args = parser.parse_args()
    from tinyfleet.device import wire
    from tinyfleet.device.head import flatten, init_params
    from tinyfleet.device.wire.contract import RoundPlan
    from tinyfleet.server.broker import ManagedBroker
    from tinyfleet.server.gateway import GatewaySettings, MqttGateway
    from tinyfleet.simulations.usecase import get_use_case

    spec = get_use_case("sine").head_spec
    theta = [wire.float32_array("0", flatten(init_params(spec, np.random.default_rng(0))))]
    config = {**RoundPlan("online", inner_lr=0.02, k=10).to_config(), "seed": 0}
    ctx = mp.get_context("spawn")
    with ManagedBroker(anonymous=True) as broker:
        echo, stop, device_cpu = ctx.Event(), ctx.Event(), ctx.Value("d", -1.0)
        proc = ctx.Process(target=_device, args=(broker.host, broker.port, echo, stop, device_cpu))
        proc.start()
        with MqttGateway(broker.address(), GatewaySettings(fleet="rt")) as gateway:
            gateway.wait_for_devices(["dev-0"], timeout=60)
            per_block = max(10, args.requests // args.blocks)
            totals = {m: [0.0, 0.0, 0.0, 0] for m in ("echo", "round")}
            serial = 0
            for _ in range(args.blocks):
                for mode in ("echo", "round"):
                    echo.set() if mode == "echo" else echo.clear()
                    time.sleep(0.05)  # the device's CPU reading is at most 20 ms old
                    dev = device_cpu.value
                    start, cpu = time.perf_counter(), time.process_time()
                    for _ in range(per_block):
                        serial += 1
                        fields = {**config, "round": serial, "device-index": 0}
                        gateway.request("dev-0", round=serial, fields=fields, arrays=theta)
                    t = totals[mode]
                    t[0] += time.perf_counter() - start
                    t[1] += time.process_time() - cpu
                    time.sleep(0.05)
                    t[2] += device_cpu.value - dev
                    t[3] += per_block
        stop.set()
        proc.join(timeout=30)
    for mode, (wall, gw_cpu, dev_cpu, n) in totals.items():
        print(
            f"{mode:5s}: {wall / n * 1e6:7.0f} us per round trip; CPU per round trip: "
            f"gateway {gw_cpu / n * 1e3:.2f} ms, device {dev_cpu / n * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
