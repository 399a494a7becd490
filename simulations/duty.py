"""``tinyfleet simulate --duty-cycle PERIOD:WINDOW``: a fleet that sleeps most of the time.

Every device wakes every PERIOD simulated seconds for WINDOW seconds (seeded phases; a
task takes ``compute_s`` of its window). For each strategy the same device work runs twice
on the simulated clock of :mod:`tinyfleet.server.async_rounds`:

* **sync**: Flower's own round loop; a round waits until its last device woke and replied
  (TinyReptile: a random device per round, as without duty cycles);
* **async**: a strategy with one device per round (TinyReptile, TinyMetaFed, and Reptile
  with its tuned settings) sends each round to the device that wakes next (and runs
  twice the rounds, still in a fraction of the time); a multi-device strategy (FedAvg)
  runs FedBuff-style buffered aggregation (``concurrency`` tasks out, aggregate the
  first ``buffer`` replies, staleness-weighted, server step scaled by
  buffer/concurrency) for the same simulated time as the sync run.

Each strategy runs with its own settings (``settings.for_strategy``: the saved tuned
ones unless told otherwise), exactly as ``simulate`` runs it: round plan, devices per
round, rounds at equal compute and few-shot adaptation lr. Sync and async of one strategy
therefore differ only in scheduling.

Reported per strategy and mode: simulated wall time, final few-shot metric on the
held-out devices, and the simulated time until the few-shot metric first reaches the
sync run's final value (the target).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, MetricRecord

from tinyfleet.device.head import params_sha256
from tinyfleet.server.async_rounds import (
    DutyCycle,
    DutyCycleGrid,
    NextToWakeSampler,
    SimClock,
    run_buffered,
    time_to_reach,
)
from tinyfleet.server.fewshot import FewShotEvaluator
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import quiet_flower, run_with_grid
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.fleet import Fleet
from tinyfleet.simulations.runner import SimulationSettings, _make_strategy, initial_head
from tinyfleet.simulations.usecase import UseCase, get_use_case

ASYNC_ROUNDS_FACTOR = 2


def parse_duty_cycle(text: str) -> tuple[float, float]:
    """``"PERIOD:WINDOW"`` in seconds, e.g. ``"60:6"`` (awake 10% of the time)."""
    from tinyfleet.errors import UsageError

    try:
        period, window = (float(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"--duty-cycle wants PERIOD:WINDOW seconds, got {text!r}") from None
    return period, window


def run_duty_cycle(
    settings: SimulationSettings,
    period: float,
    window: float,
    *,
    compute_s: float = 1.0,
    buffer_size: int | None = None,
    concurrency: int | None = None,
    use_case: UseCase | None = None,
) -> dict[str, Any]:
    """Sync vs async on a duty-cycled fleet for every federated strategy of ``settings``."""
    quiet_flower()
    use_case = use_case or get_use_case(settings.use_case)
    fleet = Fleet(use_case, use_case.make_backbone())
    spec = use_case.head_spec
    duty = DutyCycle(period, window, settings.devices, settings.seed, compute_s)
    episodes = fleet.heldout_episodes(
        settings.seed, settings.eval_devices, settings.shots, settings.query_size
    )
    lower_is_better = use_case.metric == "mse"
    theta0 = initial_head(use_case, settings.seed)
    app = make_client_app(spec, fleet.stream_for_device(), fleet.macs_per_sample)

    def fewshot_for(name: str) -> Any:
        own = settings.for_strategy(name)
        evaluator = FewShotEvaluator(spec, episodes, own.adapt_steps, own.adapt_lr, use_case.metric)
        return lambda theta: float(evaluator.curve(theta)[-1])

    out: dict[str, Any] = {
        "period_s": period,
        "window_s": window,
        "compute_s": compute_s,
        "asleep_fraction": duty.asleep_fraction,
        "heldout_devices": len(episodes),
        "metric": use_case.metric,
        "strategies": {},
    }
    for name in settings.strategies:
        if name == "scratch":
            continue
        # The strategy's own plan (tuned settings included), as ``simulate`` runs it.
        plan = settings.plan_for(name, fleet.arena_bytes)
        fewshot = fewshot_for(name)
        sync = _run_sync(name, settings, plan, duty, app, theta0, fewshot, None)
        target = sync["fewshot"]
        if settings.devices_per_round(name) == 1:
            # One device per round: nothing to buffer, so the round goes to the device that
            # wakes next. Rounds are short then: spend twice the device rounds and still
            # far less time (device_rounds says what it cost).
            more = replace(settings, rounds=ASYNC_ROUNDS_FACTOR * settings.rounds)
            if settings.baseline_rounds is not None:
                more = replace(more, baseline_rounds=ASYNC_ROUNDS_FACTOR * more.baseline_rounds)
            fast = _run_sync(name, more, plan, duty, app, theta0, fewshot, "next-to-wake")
        else:
            strategy = _make_strategy(name, settings, plan)
            # Buffer the strategy's own devices per round unless told otherwise.
            k = buffer_size or strategy.clients_per_round
            conc = max(k, concurrency or min(settings.devices, 3 * k))
            # The same simulated wall time as the sync run: count the aggregations that
            # fit (timing only), anneal beta over them, then run for real.
            common: dict[str, Any] = {
                "seed": settings.seed,
                "buffer_size": k,
                "concurrency": conc,
                "until_s": sync["sim_time_s"],
            }
            fit = run_buffered(None, plan, duty, theta0, aggregations=10**9, **common)
            result = run_buffered(
                client_app_call(app),
                plan,
                duty,
                theta0,
                aggregations=max(1, fit.aggregations),
                # K of C tasks out per aggregation: FedBuff's server step K/C keeps the
                # overlapping (stale) updates from adding up (beta 1 diverged here).
                beta0=(strategy.beta0 if name != "fedavg" else 1.0) * k / conc,
                anneal=name != "fedavg",
                evaluate=fewshot,
                eval_every=max(1, fit.aggregations // (2 * settings.eval_points)),
                # The strategy's own reply check (bound, quarantine), as its sync run has.
                guard=strategy.guard,
                **common,
            )
            fast = {
                "mode": "buffered",
                "buffer_size": k,
                "concurrency": conc,
                "sim_time_s": round(result.sim_time_s, 1),
                "fewshot": result.curve[-1]["fewshot"],
                "device_rounds": result.replies,
                "aggregations": result.aggregations,
                "mean_staleness": round(result.mean_staleness, 3),
                "rejected_replies": result.counters.rejected_replies,
                "bounded_replies": result.counters.bounded_replies,
                "quarantined_devices": sorted(result.quarantined),
                "curve": result.curve,
                "final_params_sha256": params_sha256(result.theta),
            }
        for row in (sync, fast):
            reached = time_to_reach(row["curve"], target, lower_is_better)
            row["time_to_target_s"] = None if reached is None else round(reached, 1)
        out["strategies"][name] = {
            "target_fewshot": target,
            "sync": sync,
            "async": fast,
            "speedup_to_target": (
                sync["time_to_target_s"] / fast["time_to_target_s"]
                if sync["time_to_target_s"] and fast["time_to_target_s"]
                else None
            ),
        }
    return out


def _run_sync(
    name: str,
    settings: SimulationSettings,
    plan: Any,
    duty: DutyCycle,
    app: Any,
    theta0: np.ndarray,
    fewshot: Any,
    scheduler: str | None,
) -> dict[str, Any]:
    clock = SimClock()
    strategy = _make_strategy(name, settings, plan)
    if scheduler == "next-to-wake":
        strategy.sampler = NextToWakeSampler(duty, clock)
    rounds = strategy.num_rounds
    grid = DutyCycleGrid(client_app_call(app), settings.devices, duty, clock)
    marks = {int(r) for r in np.linspace(0, rounds, min(settings.eval_points, rounds) + 1)}
    curve: list[dict[str, float]] = []

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round in marks:
            theta = np.asarray(arrays.to_numpy_ndarrays()[0], dtype=np.float32)
            curve.append({"time_s": clock.now, "round": server_round, "fewshot": fewshot(theta)})
        return None

    final, _ = run_with_grid(strategy, grid, theta0, rounds, evaluate)
    return {
        "mode": scheduler or "sync",
        "sim_time_s": round(clock.now, 1),
        "fewshot": curve[-1]["fewshot"],
        "device_rounds": rounds * strategy.clients_per_round,
        "rounds": rounds,
        "curve": curve,
        "final_params_sha256": params_sha256(final),
    }


def duty_cycle_command(args: Any, settings: SimulationSettings, use_case: UseCase, out: Any) -> int:
    """``simulate --duty-cycle``: run, write OUT/duty_cycle.json, print one line a mode."""
    import json
    from pathlib import Path

    period, window = parse_duty_cycle(args.duty_cycle)
    result = run_duty_cycle(
        settings,
        period,
        window,
        compute_s=args.compute_s,
        buffer_size=args.async_buffer,
        concurrency=args.async_concurrency,
        use_case=use_case,
    )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "duty_cycle.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(
        f"duty cycle {period:g}:{window:g} s ({100 * result['asleep_fraction']:.0f}% asleep), "
        f"{settings.devices} devices, metric {result['metric']}"
    )
    for name, row in result["strategies"].items():
        for mode in ("sync", "async"):
            r = row[mode]
            reached = r["time_to_target_s"]
            print(
                f"{name:12s} {r['mode']:13s} sim time {r['sim_time_s']:>10.1f} s  few-shot "
                f"{r['fewshot']:.4f}  target {row['target_fewshot']:.4f} reached at "
                f"{'never' if reached is None else f'{reached:.1f} s'}  device rounds "
                f"{r['device_rounds']}"
            )
    print(f"report: {path}")
    return 0
