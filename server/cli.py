"""Subcommands of ``tinyfleet`` owned by tinyfleet.server: ``broker`` and ``server run``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tinyfleet.errors import InputFileError, UsageError

LOG = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add this package's commands to the tinyfleet parser."""
    broker = subparsers.add_parser(
        "broker",
        help="run a managed Mosquitto broker in the foreground",
        description=(
            "Start Debian's mosquitto with a generated config on a loopback port and keep "
            "it running until Ctrl-C. Prints the broker URL. Secure by default: anonymous "
            "clients are refused, the gateway and each device (--devices) get a random "
            "password (written to an owner-only credentials file, path printed), client "
            "id = username, and each device reads only its own task topic and publishes "
            "only under its own id (see docs/mosquitto.md). --users gives the passwords "
            "yourself."
        ),
    )
    broker.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    broker.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    broker.add_argument(
        "--users",
        default=None,
        metavar="FILE",
        help="plaintext 'username:password' lines (device ids + tinyfleet-gateway); "
        "enables passwords and the per-device topic ACL",
    )
    broker.add_argument(
        "--devices", type=int, default=0, help="generate passwords for N devices (default 0)"
    )
    broker.add_argument("--device-prefix", default="sim", help="device ids are PREFIX-0000 ...")
    broker.add_argument(
        "--anonymous",
        action="store_true",
        help="UNSAFE: no passwords, no ACL (any local process may read tasks, forge replies)",
    )
    broker.add_argument(
        "--keep-logs", action="store_true", help="keep the config/log directory on exit"
    )
    broker.set_defaults(func=_broker)

    server = subparsers.add_parser(
        "server",
        help="the federated server for a fleet of MQTT devices",
        description="Run the Flower strategy against separate MQTT device processes.",
    )
    sub = server.add_subparsers(dest="server_command", required=True, metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run",
        help="train a fleet of MQTT devices (tinyfleet device run ...) through a broker",
        description=(
            "Wait until --devices devices (ids PREFIX-0000 ...) are online on the broker, "
            "then run Flower's strategy loop with an MQTT gateway: each round's tasks go "
            "to the devices' task topics, their updates come back on update topics. "
            "Writes the final parameters and counters as JSON with --output."
        ),
    )
    run.add_argument("--broker", required=True, help="mqtt://[user:pass@]host:port")
    run.add_argument("--tls-ca", default=None, help="CA file for mqtts:// brokers")
    run.add_argument(
        "--password-file",
        default=None,
        metavar="FILE",
        help="the gateway's broker password (else from the URL or $TINYFLEET_MQTT_PASSWORD)",
    )
    run.add_argument("--fleet", default="default", help="fleet name in the topics")
    run.add_argument("--devices", type=int, required=True, help="number of devices")
    run.add_argument("--device-prefix", default="sim", help="device ids are PREFIX-0000 ...")
    run.add_argument("--rounds", type=int, default=100, help="federated rounds")
    run.add_argument(
        "--algorithm",
        choices=("tinyreptile", "reptile", "fedavg"),
        default="tinyreptile",
        help="strategy (tinyreptile: one device per round, online SGD)",
    )
    run.add_argument("--clients-per-round", type=int, default=None, help="reptile/fedavg only")
    run.add_argument("--seed", type=int, default=0, help="run seed (device choice, streams)")
    run.add_argument("--inner-lr", type=float, default=0.02, help="device SGD learning rate")
    run.add_argument("--k", type=int, default=10, help="online samples per round")
    run.add_argument("--beta0", type=float, default=1.0, help="initial outer step size")
    run.add_argument(
        "--head",
        default="1,40,40,1",
        help="head layer sizes (default: the sine MLP 1,40,40,1)",
    )
    run.add_argument("--activation", default="tanh", help="hidden activation: tanh | relu")
    run.add_argument("--loss", default="mse", help="mse | softmax_ce")
    run.add_argument("--round-timeout", type=float, default=30.0, help="seconds per reply")
    run.add_argument(
        "--offline-wait",
        type=float,
        default=10.0,
        help="seconds to wait for an offline or dropped device to come back (default 10)",
    )
    run.add_argument(
        "--reassign",
        type=int,
        default=0,
        metavar="N",
        help="when a device stays away past --offline-wait (or times out), give its task "
        "to up to N other devices in turn, chosen deterministically (default 0: off)",
    )
    run.add_argument("--connect-timeout", type=float, default=60.0, help="wait for devices")
    run.add_argument("--output", default=None, help="write a JSON summary here")
    run.add_argument(
        "--checkpoint",
        metavar="DIR",
        default=None,
        help="write an atomic checkpoint (theta, round, counters, quarantine) into DIR",
    )
    run.add_argument("--checkpoint-every", type=int, default=10, help="rounds between saves")
    run.add_argument(
        "--resume", action="store_true", help="continue the run checkpointed in --checkpoint DIR"
    )
    run.add_argument(
        "--clear-quarantine",
        metavar="DEVICE_ID",
        action="append",
        default=[],
        help="with --resume: let this quarantined device train again (repeatable)",
    )
    run.add_argument(
        "--max-update-ratio",
        type=float,
        default=2.0,
        help="refuse a reply whose ||phi - theta|| exceeds this x max(||theta||, 1); "
        "honest sine/digits runs stay under 0.51 (default 2.0; 0 turns the bound off)",
    )
    run.add_argument(
        "--aggregate",
        choices=("mean", "median", "trimmed-mean"),
        default="mean",
        help="how reptile/fedavg combine a round's replies (default mean)",
    )
    run.add_argument(
        "--quarantine-after",
        type=int,
        default=3,
        help="refused replies after which a device is not sampled again (0: never)",
    )
    kg = run.add_argument_group(
        "knowledge graph",
        "With --model-card, the devices' self-descriptions and the card go into the "
        "knowledge graph, only the devices that can run and train the model take part "
        "(matchmaking: RAM, flash, operators, sensor, input shape), and every round is "
        "recorded as a PROV-O activity.",
    )
    kg.add_argument("--model-card", metavar="FILE", help="model_card.json of the trained model")
    kg.add_argument(
        "--kg-store",
        metavar="DIR|URL",
        help="persistent Oxigraph store directory, or a SPARQL server URL shared with "
        "`tinyfleet kg` (default: in memory)",
    )
    kg.add_argument("--task-id", default=None, help="id of this run in the graph (default: auto)")
    run.set_defaults(func=_server_run)
    from tinyfleet.server import quarantine_cli

    quarantine_cli.register(sub)


def _broker(args: argparse.Namespace) -> int:
    from tinyfleet.device.wire.topics import device_ids
    from tinyfleet.server.broker import ManagedBroker

    users = None
    if args.users:
        users = _read_users(args.users)
    if args.devices < 0:
        raise UsageError(f"--devices must be >= 0, got {args.devices}")
    if args.anonymous and (users or args.devices):
        raise UsageError("--anonymous cannot be combined with --users or --devices")
    broker = ManagedBroker(
        args.port,
        host=args.host,
        users=users,
        keep_logs=args.keep_logs,
        device_ids=device_ids(args.devices, args.device_prefix) if args.devices else (),
        anonymous=args.anonymous,
    )
    stop = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    with broker:
        print(
            f"mosquitto listening at {broker.address().url} (pid {broker.pid}); "
            f"config {broker.config_path}; Ctrl-C to stop",
            flush=True,
        )
        if broker.generated:
            print(f"generated passwords (owner-only): {broker.credentials_path}", flush=True)
        elif broker.users is None:
            print("WARNING: anonymous access: any local process can read and forge", flush=True)
        try:
            while not stop["now"] and broker.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        if not broker.running and not stop["now"]:
            print(f"mosquitto exited; log: {broker.log_path}", file=sys.stderr)
            return 1
    return 0


def _read_users(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise InputFileError(f"cannot read users file {path}: {error.strerror}") from None
    users = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name or not password:
            raise InputFileError(f"{path}:{number}: expected 'username:password'")
        users[name] = password
    return users


def _server_run(args: argparse.Namespace) -> int:
    from tinyfleet.device.head import HeadSpec, params_sha256
    from tinyfleet.device.mqtt import BrokerAddress
    from tinyfleet.device.wire.topics import device_ids
    from tinyfleet.server.fleet_kg import RecordingCall, params_version
    from tinyfleet.server.gateway import GatewaySettings, MqttGateway
    from tinyfleet.server.gateway_flower import GatewayClientCall, route_by_config
    from tinyfleet.server.run import quiet_flower, run_in_process
    from tinyfleet.server.run_setup import (
        fleet_knowledge,
        initial_head,
        make_server_strategy,
        read_card,
        run_fingerprint,
    )
    from tinyfleet.server.sampling import SeededSampler

    if args.devices < 1 or args.rounds < 1:
        raise UsageError("--devices and --rounds must be >= 1")
    card = read_card(args.model_card) if args.model_card else None
    try:
        sizes = tuple(int(n) for n in args.head.split(","))
    except ValueError:
        raise UsageError(f"--head must be comma-separated ints, got {args.head!r}") from None
    spec = HeadSpec(sizes, args.activation, args.loss)
    address = BrokerAddress.parse(args.broker, tls_ca=args.tls_ca)
    if address.password is None:
        from tinyfleet.device.mqtt import read_password

        password = read_password(None, args.password_file)
        if password is not None:
            from tinyfleet.server.broker import GATEWAY_USER

            address = address.with_credentials(address.username or GATEWAY_USER, password)
    elif args.password_file:
        raise UsageError("give the password in --broker or --password-file, not both")
    quiet_flower()
    ids = device_ids(args.devices, args.device_prefix)
    settings = GatewaySettings(
        fleet=args.fleet, round_timeout=args.round_timeout, offline_wait=args.offline_wait
    )
    if args.reassign < 0:
        raise UsageError(f"--reassign must be >= 0, got {args.reassign}")
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        gateway = stack.enter_context(MqttGateway(address, settings))
        print(f"waiting for {len(ids)} devices on {address.url} ...", flush=True)
        gateway.wait_for_devices(ids, args.connect_timeout)
        knowledge = None
        eligible: list[int] | None = None
        if card is not None:
            knowledge = fleet_knowledge(stack, args.kg_store, card)
            refused = knowledge.register_devices(
                {i: d for i, d in gateway.descriptions.items() if i in set(ids)}
            )
            eligible = knowledge.eligible_indices(ids)
            print(
                f"knowledge graph: {len(eligible)} of {len(ids)} devices can run and train "
                f"{knowledge.model_id} ({len(refused)} descriptions refused)",
                flush=True,
            )
            if not eligible:
                raise UsageError(
                    f"no device of the fleet can run and train {knowledge.model_id}; "
                    f"see: tinyfleet kg match --model {knowledge.model_id}"
                )
        pool = eligible
        sampler = SeededSampler(
            len(ids), args.seed, eligible=None if pool is None else (lambda _round: pool)
        )
        on_quarantine = None
        if knowledge is not None:
            kg_view = knowledge

            def on_quarantine(device: int, server_round: int, reason: str) -> None:
                kg_view.record_quarantine(ids[device], server_round, reason)

        strategy = make_server_strategy(args, sampler, on_quarantine)
        call = RecordingCall(GatewayClientCall(gateway, route_by_config(ids)))
        relay: Any = call
        if args.reassign > 0:
            from tinyfleet.server.reassign import ReassigningCall

            def available(device: int) -> bool:
                return ids[device] in gateway.online_devices()

            relay = ReassigningCall(call, strategy, available, args.reassign)
        task_id = args.task_id or f"{args.fleet}-{args.algorithm}-{int(time.time())}"
        recorded = {"rounds": 0}

        def record(upto: int | None, theta: Any) -> None:
            """Write finished rounds to the graph (at each checkpoint: each round once)."""
            if knowledge is None:
                return
            logs = {r: log for r, log in call.rounds.items() if upto is None or r <= upto}
            recorded["rounds"] += knowledge.record_rounds(
                logs, ids, args.algorithm, task_id, params_version(theta)
            )
            for r in logs:
                call.rounds.pop(r, None)

        start, rounds_left = initial_head(spec, args.seed), args.rounds
        if args.checkpoint:
            from tinyfleet.server import checkpoint

            start, rounds_left = checkpoint.prepare(
                strategy,
                Path(args.checkpoint),
                every=args.checkpoint_every,
                resume=args.resume,
                settings=run_fingerprint(args),
                initial=start,
                on_save=record,
            )
        elif args.resume:
            raise UsageError("--resume needs --checkpoint DIR")
        if args.clear_quarantine and not args.resume:
            raise UsageError("--clear-quarantine needs --resume (a fresh run has none)")
        for device_id in args.clear_quarantine:
            if device_id not in ids:
                raise UsageError(f"--clear-quarantine: {device_id!r} is not in this fleet")
            strategy.quarantine.clear(ids.index(device_id))
        if knowledge is not None:  # re-published descriptions replaced the old marks
            q = strategy.quarantine
            for device, server_round in sorted(q.quarantined.items()):
                knowledge.record_quarantine(ids[device], server_round, q.reasons.get(device, ""))
        final = start
        if rounds_left > 0:
            final, _ = run_in_process(
                strategy,
                relay,
                len(ids),
                start,
                rounds_left,
                max_concurrent=strategy.clients_per_round,
            )
        counters = gateway.counters.as_dict()
        record(None, final)
    elapsed = time.perf_counter() - started
    summary = {
        "algorithm": args.algorithm,
        "rounds": args.rounds,
        "devices": args.devices,
        "eligible_devices": len(ids) if eligible is None else len(eligible),
        "rounds_recorded_in_kg": recorded["rounds"],
        "resumed_from_round": strategy.round_offset,
        "seed": args.seed,
        "seconds": round(elapsed, 3),
        "accepted": strategy.counters.accepted_replies,
        "rejected": strategy.counters.rejected_replies,
        "reassigned": strategy.counters.reassigned_tasks,
        "rejected_by_device": {
            ids[d]: n for d, n in strategy.counters.rejected_by_device.items() if d >= 0
        },
        "quarantined": [ids[d] for d in sorted(strategy.quarantine.quarantined)],
        "gateway": counters,
        "final_params_sha256": params_sha256(final),
    }
    print(json.dumps(summary, indent=1))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump({**summary, "final_params": [float(v) for v in final]}, handle)
    return 0
