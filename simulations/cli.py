"""Subcommands of ``tinyfleet`` owned by tinyfleet.simulations: ``simulate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SIMULATE_HELP = """\
Simulate a fleet of heterogeneous devices and compare federated strategies on it:
TinyReptile (one device per round, k online SGD steps, annealed outer step), TinyMetaFed
(TinyReptile + partial local reconstruction + a Top-P% int8 update upload), Reptile
(devices x epochs over a stored support set), FedAvg (weighted average), and scratch (no
federated training). Every strategy is then adapted the same
way on held-out devices that never trained (SHOTS shots, ADAPT_STEPS online steps).
By default all federated strategies get the same total device compute: Reptile's and
FedAvg's rounds are derived from TinyReptile's budget (rounds x k gradient evaluations).
Each strategy runs with its own tuned settings when the use case has them
(simulations/usecases/USE_CASE_tuned.json, written by --tune). --seeds 0,1,2 repeats the
comparison per seed and reports mean and spread.
Writes OUT/report.json, OUT/report.md, OUT/learning_curve.png, OUT/adaptation_curve.png,
OUT/pareto.png. Options left out take the use case's defaults (shown as 'use case default').
"""


def register(subparsers: Any) -> None:
    """Add this package's commands to the tinyfleet parser."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate a fleet: TinyReptile vs. Reptile, FedAvg and scratch; write a report",
        description=SIMULATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "use_case",
        metavar="USE_CASE",
        help="use case to simulate: sine, digits, kws, presence or characters",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="real data instead of the embedded default: kws = a Speech Commands folder "
        "(WORD/SPEAKER_nohash_N.wav, 16 kHz), presence = UCI Occupancy CSVs, characters = "
        "an Omniglot folder (see docs/usecases.md)",
    )
    size = p.add_argument_group("fleet and run")
    size.add_argument(
        "--devices", type=int, help="training devices in the fleet (use case default)"
    )
    size.add_argument(
        "--rounds",
        type=int,
        help="TinyReptile rounds; Reptile/FedAvg rounds follow from the equal-compute budget "
        "(use case default)",
    )
    size.add_argument(
        "--seed", type=int, default=0, help="run seed: fleet, sampling, data (default 0)"
    )
    size.add_argument(
        "--seeds",
        help="comma-separated seeds, e.g. 0,1,2: the comparison per seed, reported as mean, "
        "std and per seed (overrides --seed)",
    )
    size.add_argument(
        "--tune",
        action="store_true",
        help="first tune every strategy on validation devices at the same compute (grid in "
        "simulations/tuning.py; runs cached in ./.tinyfleet-cache), save the choice with the "
        "use case, then evaluate it on the held-out test devices",
    )
    size.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes for --tune trials and for the seeds of an in-process run "
        "(default 1; numbers do not depend on it)",
    )
    size.add_argument(
        "--untuned",
        action="store_true",
        help="ignore the use case's saved tuned settings (every strategy on the shared ones)",
    )
    size.add_argument(
        "--out",
        type=Path,
        help="report folder (default: ./tinyfleet-simulate-USE_CASE)",
    )
    size.add_argument(
        "--strategies",
        default="tinyreptile,tinymetafed,reptile,fedavg,scratch",
        help="comma-separated subset of tinyreptile,tinymetafed,reptile,fedavg,scratch "
        "(default: all)",
    )
    size.add_argument(
        "--transport",
        choices=("inproc", "simulation", "mqtt"),
        default="inproc",
        help="inproc: Flower strategies on an in-process Grid (fast, default); simulation: "
        "Flower's Simulation Engine, one virtual SuperNode per device (~0.15 s per round: "
        "use few rounds); mqtt: one MQTT device client per device through a real "
        "Mosquitto broker (started on a free loopback port unless --broker is given). "
        "All give bit-identical numbers.",
    )
    size.add_argument(
        "--broker",
        metavar="URL",
        help="with --transport mqtt: an existing broker, mqtt://HOST:PORT (default: start "
        "Mosquitto on a free loopback port and stop it afterwards)",
    )
    size.add_argument("--no-progress", action="store_true", help="no progress bar")
    size.add_argument(
        "--checkpoint",
        metavar="DIR",
        type=Path,
        help="write atomic checkpoints into DIR (every strategy's theta, round, counters, "
        "curve so far; finished strategies' rows) so that a killed run can --resume",
    )
    size.add_argument(
        "--checkpoint-every", type=int, default=50, help="rounds between checkpoints (50)"
    )
    size.add_argument(
        "--resume",
        action="store_true",
        help="continue the run checkpointed in --checkpoint DIR (same settings): the report "
        "equals an uninterrupted run's",
    )
    size.add_argument(
        "--firmware-report",
        type=Path,
        metavar="JSON",
        help="a saved `tinyfleet firmware report --json` for this use case's model: adds "
        "device time and energy per device-round (nRF52840) to the report",
    )
    duty = p.add_argument_group("devices that sleep (simulated clock; simulations/duty.py)")
    duty.add_argument(
        "--duty-cycle",
        metavar="PERIOD:WINDOW",
        help="devices wake every PERIOD s for WINDOW s (e.g. 60:6 = 90%% asleep); compares "
        "sync rounds with async ones (one device per round: next device to wake; "
        "several: buffered, staleness-weighted) and writes OUT/duty_cycle.json instead of the report",
    )
    duty.add_argument("--compute-s", type=float, default=1.0, help="seconds a task takes (1)")
    duty.add_argument(
        "--async-buffer", type=int, help="replies per async aggregation (clients per round)"
    )
    duty.add_argument(
        "--async-concurrency", type=int, help="async tasks in flight (3 x the buffer)"
    )
    algo = p.add_argument_group("training (devices and server)")
    algo.add_argument("--inner-lr", type=float, help="device SGD learning rate (use case default)")
    algo.add_argument("--k", type=int, help="TinyReptile: online samples = SGD steps per round")
    algo.add_argument("--beta0", type=float, help="TinyReptile: initial outer step (linear anneal)")
    algo.add_argument(
        "--reptile-beta0", type=float, help="Reptile: initial outer step (linear anneal)"
    )
    algo.add_argument(
        "--clients-per-round", type=int, help="Reptile/FedAvg: devices per round (use case default)"
    )
    algo.add_argument(
        "--support-size", type=int, help="Reptile/FedAvg: samples each device stores per round"
    )
    algo.add_argument("--epochs", type=int, help="Reptile/FedAvg: epochs over the stored samples")
    algo.add_argument("--batch-size", type=int, help="Reptile/FedAvg: minibatch size")
    algo.add_argument(
        "--baseline-inner-lr",
        type=float,
        help="Reptile/FedAvg: device SGD learning rate (default: the use case's, else --inner-lr)",
    )
    algo.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        help="Reptile/FedAvg device optimiser: sgd (default) or adam with beta1=0 "
        "(openai/supervised-reptile's inner loop)",
    )
    algo.add_argument(
        "--top-p", type=float, help="TinyMetaFed: fraction of the update uploaded (Top-P%%)"
    )
    algo.add_argument(
        "--local-layers", type=int, help="TinyMetaFed: last layers kept on the device (1)"
    )
    algo.add_argument(
        "--theta-int8",
        action="store_true",
        default=None,
        help="TinyMetaFed: the device keeps theta as int8, the server corrects the update",
    )
    algo.add_argument(
        "--baseline-rounds",
        type=int,
        help="Reptile/FedAvg rounds, overriding the equal-compute budget (breaks fairness)",
    )
    ev = p.add_argument_group("few-shot evaluation on held-out devices")
    ev.add_argument("--shots", type=int, help="labelled samples per held-out device (default 10)")
    ev.add_argument("--adapt-steps", type=int, help="online adaptation steps (default 10)")
    ev.add_argument("--adapt-lr", type=float, help="adaptation learning rate (use case default)")
    ev.add_argument("--query-size", type=int, help="query points per held-out device (default 100)")
    ev.add_argument("--heldout-devices", type=int, help="held-out devices (use case default)")
    ev.add_argument(
        "--eval-points", type=int, default=10, help="learning-curve evaluations per strategy (10)"
    )
    ev.add_argument(
        "--eval-devices",
        type=int,
        default=20,
        help="held-out devices used for the learning curve (20)",
    )
    p.set_defaults(func=simulate_command)


def simulate_command(args: argparse.Namespace) -> int:
    from tinyfleet.errors import UsageError
    from tinyfleet.simulations.report import write_report
    from tinyfleet.simulations.runner import run, settings_for
    from tinyfleet.simulations.usecase import get_use_case

    if args.data_dir is not None and args.transport == "mqtt":
        # MQTT device processes build their own streams from the use case's default data.
        raise UsageError("--data-dir works with --transport inproc or simulation, not mqtt")
    use_case = get_use_case(args.use_case, data_dir=args.data_dir)
    fw_row = None
    if args.firmware_report is not None:  # checked before anything runs
        from tinyfleet.simulations.device_cost import load_firmware_row

        fw_row = load_firmware_row(args.firmware_report, use_case.head_spec.layer_sizes)
    strategies = tuple(s.strip() for s in str(args.strategies).split(",") if s.strip())
    try:
        seeds = tuple(int(v) for v in str(args.seeds or "").split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    settings = settings_for(
        use_case,
        tuned=not (args.untuned or args.tune),
        seeds=seeds or None,
        top_p=args.top_p,
        local_layers=args.local_layers,
        theta_int8=args.theta_int8,
        devices=args.devices,
        rounds=args.rounds,
        seed=args.seed,
        strategies=strategies,
        transport=args.transport,
        broker=args.broker,
        inner_lr=args.inner_lr,
        k=args.k,
        beta0=args.beta0,
        reptile_beta0=args.reptile_beta0,
        clients_per_round=args.clients_per_round,
        support_size=args.support_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        baseline_inner_lr=args.baseline_inner_lr,
        optimizer=args.optimizer,
        baseline_rounds=args.baseline_rounds,
        shots=args.shots,
        adapt_steps=args.adapt_steps,
        adapt_lr=args.adapt_lr,
        query_size=args.query_size,
        heldout_devices=args.heldout_devices,
        eval_points=args.eval_points,
        eval_devices=args.eval_devices,
    )
    out = args.out if args.out is not None else Path(f"tinyfleet-simulate-{use_case.name}")
    checkpoint = None
    if args.checkpoint is not None:
        from tinyfleet.simulations.resume import SimulateCheckpoint

        if args.tune or args.duty_cycle:
            raise UsageError("--checkpoint works with a plain simulate run (not --tune, "
                             "--duty-cycle)")  # fmt: skip
        checkpoint = SimulateCheckpoint(args.checkpoint, args.checkpoint_every, args.resume)
    elif args.resume:
        raise UsageError("--resume needs --checkpoint DIR")
    if args.tune:
        from dataclasses import replace

        from tinyfleet.simulations.tuning import tune, tuned_path

        doc = tune(settings, log=lambda line: print(line, file=sys.stderr), jobs=args.jobs)
        print(f"tuned settings: {tuned_path(use_case.name)}", file=sys.stderr)
        settings = replace(settings, per_strategy=doc["per_strategy"])
    if args.duty_cycle:
        from tinyfleet.simulations.duty import duty_cycle_command

        return duty_cycle_command(args, settings, use_case, out)
    total = len(settings.run_seeds) * sum(
        settings.rounds_for(s) for s in settings.strategies if s != "scratch"
    )
    from tqdm import tqdm

    with tqdm(
        total=total, unit="round", desc=f"simulate {use_case.name}", disable=args.no_progress
    ) as bar:
        report = run(
            settings, progress=bar.update, use_case=use_case, jobs=args.jobs, checkpoint=checkpoint
        )
    if fw_row is not None:
        from tinyfleet.simulations.device_cost import add_device_costs

        add_device_costs(report, fw_row, str(args.firmware_report))
    paths = write_report(report, out)
    metric = report["metric"]
    for name, row in report["strategies"].items():
        print(
            f"{name:12s} few-shot {metric} {row['fewshot_mean']:.4f} +- {row['fewshot_std']:.4f}"
            f"  device RAM {row['device_ram_bytes']} B  grad evals/device-round "
            f"{row['device_grad_evals_per_round']}  total {row['grad_evals_total']}  bytes "
            f"up/device-round {row['bytes_up_per_device_round']}"
            + ("  DIVERGED" if row.get("diverged") else "")
        )
    for name in report["comparison"].get("diverged", []):
        print(
            f"tinyfleet: warning: {name} diverged (seeds "
            f"{report['strategies'][name]['diverged_seeds']}): its last round's replies were "
            "all rejected (NaN/Inf) or its few-shot metric is not finite; lower its learning "
            "rate",
            file=sys.stderr,
        )
    if report["comparison"].get("equal_compute_within_10pct") is False:
        print(
            "tinyfleet: warning: the strategies' total device compute differs by more than "
            "10% (too few rounds to split the budget evenly); see report.json 'comparison'",
            file=sys.stderr,
        )
    print(f"report: {paths[0]}", file=sys.stderr)
    return 0
