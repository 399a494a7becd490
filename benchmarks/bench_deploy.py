"""Flower's Deployment Engine (real SuperLink + gateway SuperNodes + MQTT devices) vs the
in-process Grid on the same work.

Run:  .venv/bin/python benchmarks/bench_deploy.py [--sites 2] [--devices-per-site 2]
                                                  [--rounds 20] [--strategy tinyreptile]

Both runs train the same strategy on the same S x D devices with the same seed (and must
end with the same final parameters: checked). Reported: the strategy's wall time
(report ``strategies.NAME.wall_s``: the round loop plus the learning-curve evaluations,
kept to one), rounds/s and messages/s (a message = one task + its reply), their ratio,
the whole ``flwr run`` time, and the peak resident memory of the SuperLink's and each
gateway SuperNode's process tree (the SuperNode's ClientApp processes included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tinyfleet.simulations.deploy import DeploySettings, deploy_local
from tinyfleet.simulations.runner import run, settings_for
from tinyfleet.simulations.usecase import get_use_case

SMALL = {"eval-points": 1, "heldout-devices": 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--devices-per-site", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--strategy", default="tinyreptile")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    devices = args.sites * args.devices_per_site

    settings = settings_for(
        get_use_case("sine"),
        devices=devices,
        rounds=args.rounds,
        seed=args.seed,
        strategies=(args.strategy,),
        eval_points=1,
        heldout_devices=5,
    )
    local = run(settings)["strategies"][args.strategy]
    with tempfile.TemporaryDirectory(prefix="tinyfleet-bench-deploy-") as folder:
        report = deploy_local(
            DeploySettings(
                sites=args.sites,
                devices_per_site=args.devices_per_site,
                rounds=args.rounds,
                seed=args.seed,
                strategies=args.strategy,
                out=Path(folder),
                run_config=dict(SMALL),
            ),
            log=lambda _text: None,
        )
    deployed = report["strategies"][args.strategy]
    rounds = int(deployed["rounds"])
    messages = rounds * int(deployed["devices_per_round"])
    same = deployed["final_params_sha256"] == local["final_params_sha256"]
    rows = {
        "in-process Grid": local["wall_s"],
        "Deployment Engine": deployed["wall_s"],
    }
    print(f"{args.sites} sites x {args.devices_per_site} devices, {rounds} {args.strategy} rounds")
    for name, wall in rows.items():
        wall = max(float(wall), 1e-9)
        print(
            f"  {name:18s} {wall:8.3f} s  {rounds / wall:9.2f} rounds/s  "
            f"{messages / wall:9.2f} messages/s"
        )
    ratio = max(float(deployed["wall_s"]), 1e-9) / max(float(local["wall_s"]), 1e-9)
    print(f"  Deployment Engine / in-process: {ratio:.0f}x the time")
    print(f"  flwr run end to end: {report['deployment']['run_wall_s']:.1f} s")
    print(f"  peak RSS (MB): {json.dumps(report['deployment']['peak_rss_mb'])}")
    print(f"  same final parameters: {same}")
    if not same:
        raise SystemExit("final parameters differ between the Deployment Engine and in process")


if __name__ == "__main__":
    main()
