"""``tinyfleet device run``: simulated MQTT devices, each learning on its use case's stream.

It lives in tinyfleet.simulations because a simulated device needs a use case's data
stream (tinyfleet.device may not import the simulations). A real device runs the C
firmware or :class:`tinyfleet.device.mqtt_client.MqttDevice` with its own sensor stream.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import time
from collections.abc import Callable
from typing import Any

from tinyfleet.device.mqtt import PASSWORD_ENV, read_password
from tinyfleet.device.wire.topics import device_index_from_id
from tinyfleet.errors import InputFileError, TinyfleetError, UsageError


def register(subparsers: Any) -> None:
    """Add this package's commands to the tinyfleet parser."""
    device = subparsers.add_parser(
        "device",
        help="run simulated MQTT devices",
        description="Simulated devices that join federated rounds over MQTT.",
    )
    sub = device.add_subparsers(dest="device_command", required=True, metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run",
        help="connect simulated device(s) to a broker and answer training tasks",
        description=(
            "Connect one device (or --count devices in one process) to the broker, publish "
            "its retained description and status (Last Will: offline), subscribe to its task "
            "topic and answer each training task with the round work on its own data stream "
            "of --use-case. Runs until Ctrl-C or SIGTERM. Device ids ending in -NNNN get "
            "index NNNN unless --device-index is given."
        ),
    )
    run.add_argument("--broker", required=True, help="mqtt://[user:pass@]host:port")
    run.add_argument("--tls-ca", default=None, help="CA file for mqtts:// brokers")
    run.add_argument("--device-id", required=True, help="device id (with --count: the prefix)")
    run.add_argument("--device-index", type=int, default=None, help="index of the stream")
    run.add_argument("--count", type=int, default=1, help="run PREFIX-0000.. PREFIX-(N-1)")
    run.add_argument("--use-case", default="sine", help="use case whose stream to learn on")
    run.add_argument("--fleet", default="default", help="fleet name in the topics")
    run.add_argument(
        "--password",
        default=None,
        help="broker password (username = device id); prefer --password-file or "
        f"${PASSWORD_ENV} (a command line is visible to other local users)",
    )
    run.add_argument("--password-file", default=None, metavar="FILE", help="read it from FILE")
    run.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="exit non-zero if not connected within this many seconds (default 30)",
    )
    run.add_argument(
        "--description",
        default=None,
        metavar="FILE",
        help="DEVICE DESCRIPTION JSON to publish (default: a simulated host device)",
    )
    run.add_argument("--max-payload", type=int, default=256 * 1024, help="chunk above this")
    run.add_argument(
        "--duty-cycle",
        default=None,
        metavar="PERIOD:WINDOW",
        help="sleep: be connected WINDOW s every PERIOD s (seeded phase per device), with "
        "a persistent MQTT 5 session so tasks wait at the broker; one task per wake",
    )
    run.set_defaults(func=_device_run)


def use_case_streams(use_case_name: str) -> Any:
    """``stream_for_device(seed, index)`` of a use case's simulated fleet (the same streams
    ``tinyfleet simulate`` gives its in-process devices)."""
    from tinyfleet.simulations.fleet import Fleet
    from tinyfleet.simulations.usecase import get_use_case

    use_case = get_use_case(use_case_name)
    return Fleet(use_case, use_case.make_backbone()).stream_for_device()


def use_case_stream_factory(use_case_name: str) -> Callable[[], Any]:
    """A picklable ``factory() -> stream_for_device`` for device worker processes
    (:func:`tinyfleet.server.gateway_fleet.run_mqtt_fleet`'s ``stream_factory``)."""
    return functools.partial(use_case_streams, use_case_name)


def _device_run(args: argparse.Namespace) -> int:
    from tinyfleet.device.duty import DutyCycledDevice
    from tinyfleet.device.mqtt import BrokerAddress
    from tinyfleet.device.mqtt_client import MqttDevice, RoundTaskHandler
    from tinyfleet.simulations.fleet import Fleet
    from tinyfleet.simulations.usecase import get_use_case

    if args.count < 1:
        raise UsageError("--count must be >= 1")
    if args.device_index is not None and args.device_index < 0:
        raise UsageError(f"--device-index must be >= 0, got {args.device_index}")
    if not args.connect_timeout > 0:
        raise UsageError(f"--connect-timeout must be > 0, got {args.connect_timeout}")
    duty = None
    if args.duty_cycle:
        from tinyfleet.simulations.duty import parse_duty_cycle

        duty = parse_duty_cycle(args.duty_cycle)
    address = BrokerAddress.parse(args.broker, tls_ca=args.tls_ca)
    password = read_password(args.password, args.password_file)
    use_case = get_use_case(args.use_case)
    fleet = Fleet(use_case, use_case.make_backbone())
    description = None
    if args.description:
        try:
            with open(args.description, encoding="utf-8") as handle:
                description = json.load(handle)
        except (OSError, ValueError) as error:
            raise InputFileError(f"cannot read description {args.description}: {error}") from None
    elif use_case.name == "presence":  # a room's multisensor: CO2, temperature, ...
        from tinyfleet.simulations.presence_fleet import room_description

        description = room_description(args.device_id, args.fleet)
    if args.count == 1:
        ids = [args.device_id]
        indices = [
            args.device_index
            if args.device_index is not None
            else device_index_from_id(args.device_id)
        ]
    else:
        start = args.device_index or 0
        indices = list(range(start, start + args.count))
        ids = [f"{args.device_id}-{i:04d}" for i in indices]
    all_settings = [
        address.device_settings(
            device_id,
            fleet=args.fleet,
            username=device_id if password else address.username,
            password=password or address.password,
            max_payload=args.max_payload,
            description=dict(description, device_id=device_id) if description else None,
            # A sleeper's session (and its queued tasks) outlive many sleep periods.
            session_expiry_s=None if duty is None else int(max(3600, 10 * duty[0])),
            tasks_per_wake=None if duty is None else 1,
        )
        for device_id in ids
    ]  # every setting is checked before anything connects
    cycles = _duty_cycles(duty, indices)
    devices = []
    for settings, index in zip(all_settings, indices, strict=True):
        handler = RoundTaskHandler(
            use_case.head_spec, fleet.stream_for_device(), index, fleet.macs_per_sample
        )
        devices.append(MqttDevice(settings, handler).start(wait=None))
    deadline = time.monotonic() + args.connect_timeout
    for device in devices:
        if not device.connected.wait(max(deadline - time.monotonic(), 0.0)):
            problem = device.connect_problem(args.connect_timeout)
            for other in devices:
                other.stop(graceful=False)
            raise TinyfleetError(problem)
    stop = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        stop["now"] = True

    sleepers = (
        [
            DutyCycledDevice(device, period, window, phase).start()
            for device, (period, window, phase) in zip(devices, cycles, strict=True)
        ]
        if cycles
        else []
    )
    signal.signal(signal.SIGTERM, _stop)
    print(
        f"{len(devices)} device(s) connecting to {address.url} ({ids[0]} ...); Ctrl-C to stop",
        flush=True,
    )
    try:
        while not stop["now"]:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for sleeper in sleepers:
            sleeper.stop()
        for device in devices:
            device.stop()
    done = sum(d.counters.replies for d in devices)
    print(f"stopped; {done} round(s) answered", flush=True)
    return 0


def _duty_cycles(
    duty: tuple[float, float] | None, indices: list[int]
) -> list[tuple[float, float, float]]:
    """``(period, window, phase)`` per device: the simulated fleet's seeded phases
    (:class:`~tinyfleet.server.async_rounds.DutyCycle`, seed 0) by device index."""
    if duty is None:
        return []
    from tinyfleet.server.async_rounds import DutyCycle

    period, window = duty
    phases = DutyCycle(period, window, max(indices) + 1, 0, compute_s=0.0).phases
    return [(period, window, float(phases[i])) for i in indices]
