"""``tinyfleet deploy``: Flower's Deployment Engine on this machine (docs/deployment.md).

``deploy local`` starts a SuperLink, one Mosquitto broker + simulated devices + one
gateway SuperNode per site, runs the tinyfleet Flower App with ``flwr run`` and stops
everything again. ``deploy simulation`` runs the same app on Flower's Simulation runtime.
``deploy certs`` writes a CA, a SuperLink certificate and SuperNode keys for TLS and
SuperNode authentication.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

LOCAL_HELP = """\
Run the tinyfleet Flower App through Flower's Deployment Engine with real processes on
loopback: flower-superlink (one), and per site a Mosquitto broker, D simulated devices
and a gateway flower-supernode whose ClientApp relays tasks to the site's devices over
MQTT; the app is started with `flwr run`. Site s holds devices s*D .. s*D+D-1, so the
final parameters equal `tinyfleet simulate USE_CASE --devices S*D` with the same seed.
Writes OUT/report.json (like simulate) and OUT/logs/*.log; stops everything it started,
also on failure and Ctrl-C.
"""


def register(subparsers: Any) -> None:
    """Add this package's deploy commands to the tinyfleet parser."""
    deploy = subparsers.add_parser(
        "deploy",
        help="run the Flower App on Flower's Deployment Engine (local sites) or Simulation runtime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = deploy.add_subparsers(dest="deploy_command", required=True, metavar="SUBCOMMAND")
    local = sub.add_parser(
        "local",
        help="SuperLink + per-site broker, devices and gateway SuperNode; flwr run; report",
        description=LOCAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    local.add_argument("--sites", type=int, default=2, help="sites (default 2)")
    local.add_argument("--devices-per-site", type=int, default=2, help="devices per site (2)")
    local.add_argument("--rounds", type=int, default=5, help="TinyReptile rounds (5)")
    local.add_argument("--seed", type=int, default=0, help="run seed (0)")
    local.add_argument("--use-case", default="sine", help="use case (sine)")
    local.add_argument(
        "--strategy",
        default="tinyreptile",
        help="comma-separated strategies, or all (default tinyreptile)",
    )
    local.add_argument("--out", type=Path, default=Path("tinyfleet-deploy"), help="report folder")
    local.add_argument(
        "--superlink",
        metavar="HOST:PORT",
        help="use this running SuperLink instead of starting one",
    )
    local.add_argument(
        "--superlink-port", type=int, help="port of the SuperLink started here (default: free)"
    )
    local.add_argument(
        "--site-broker",
        action="append",
        default=[],
        metavar="URL",
        help="an existing broker for a site, once per site in order (default: start Mosquitto)",
    )
    local.add_argument(
        "--tls",
        type=Path,
        metavar="DIR",
        help="TLS between SuperNodes and SuperLink with the files of `deploy certs DIR`",
    )
    local.add_argument(
        "--supernode-auth",
        action="store_true",
        help="SuperNode authentication (needs --tls; keys from `deploy certs`)",
    )
    local.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more run config for the app (e.g. eval-points=2), repeatable",
    )
    local.add_argument("--timeout", type=float, default=1800.0, help="seconds for the run")
    local.set_defaults(func=_local)

    sim = sub.add_parser(
        "simulation",
        help="flwr run on Flower's Simulation runtime (a SuperLink --simulation started here)",
    )
    sim.add_argument("--supernodes", type=int, default=4, help="virtual SuperNodes (4)")
    sim.add_argument("--devices", type=int, default=10, help="training devices (10)")
    sim.add_argument("--rounds", type=int, default=5, help="TinyReptile rounds (5)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--use-case", default="sine")
    sim.add_argument("--strategy", default="tinyreptile")
    sim.add_argument("--out", type=Path, default=Path("tinyfleet-flower-simulation"))
    sim.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    sim.add_argument("--timeout", type=float, default=1800.0)
    sim.set_defaults(func=_simulation)

    certs = sub.add_parser(
        "certs",
        help="write a CA, a SuperLink TLS certificate and SuperNode key pairs into DIR",
    )
    certs.add_argument("dir", type=Path, metavar="DIR")
    certs.add_argument("--sites", type=int, default=2, help="SuperNode key pairs (2)")
    certs.add_argument(
        "--host", action="append", default=[], help="SuperLink host name/IP (127.0.0.1)"
    )
    certs.set_defaults(func=_certs)


def _extra_config(pairs: list[str]) -> dict[str, Any]:
    from tinyfleet.errors import UsageError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--config wants KEY=VALUE, got {pair!r}")
        parsed: Any = value
        for cast in (int, float):
            try:
                parsed = cast(value)
                break
            except ValueError:
                continue
        out[key.strip()] = parsed
    return out


def _print_report(report: dict[str, Any], path: Path) -> None:
    metric = report["metric"]
    for name, row in report["strategies"].items():
        print(
            f"{name:12s} few-shot {metric} {row['fewshot']:.4f}  "
            f"final_params_sha256 {row['final_params_sha256'][:16]}"
        )
    print(f"report: {path}")


def _local(args: argparse.Namespace) -> int:
    from tinyfleet.errors import UsageError
    from tinyfleet.simulations.deploy import DeploySettings, deploy_local

    if args.supernode_auth and args.tls is None:
        raise UsageError("--supernode-auth needs --tls DIR (Flower authenticates over TLS)")
    settings = DeploySettings(
        sites=args.sites,
        devices_per_site=args.devices_per_site,
        rounds=args.rounds,
        seed=args.seed,
        use_case=args.use_case,
        strategies=args.strategy,
        out=args.out,
        superlink=args.superlink,
        superlink_port=args.superlink_port,
        site_brokers=tuple(args.site_broker),
        run_config=_extra_config(args.config),
        timeout=args.timeout,
        tls_dir=args.tls,
        supernode_auth=args.supernode_auth,
    )
    report = deploy_local(settings)
    _print_report(report, Path(args.out) / "report.json")
    return 0


def _simulation(args: argparse.Namespace) -> int:
    from tinyfleet.simulations.deploy_sim import simulation_runtime

    config = {
        "use-case": args.use_case,
        "strategy": args.strategy,
        "rounds": args.rounds,
        "devices": args.devices,
        "seed": args.seed,
        **_extra_config(args.config),
    }
    report = simulation_runtime(args.out, config, args.supernodes, args.timeout)
    _print_report(report, Path(args.out) / "report.json")
    return 0


def _certs(args: argparse.Namespace) -> int:
    from tinyfleet.simulations.deploy_tls import write_certificates

    paths = write_certificates(args.dir, args.sites, args.host or ["127.0.0.1", "localhost"])
    for path in paths:
        print(path)
    return 0
