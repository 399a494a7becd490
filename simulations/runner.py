"""``tinyfleet simulate``: train every strategy on the same fleet, evaluate, report.

Fair comparison (default): every federated strategy gets the same total device compute,
a budget of ``rounds * k`` per-sample gradient evaluations (TinyReptile's ``rounds`` rounds
of one device doing ``k`` online steps); every other strategy gets
``round(budget / (devices per round * grad evals per device-round))`` rounds. All
strategies start from the same initial head and are adapted on the same held-out devices
in the same way (``shots`` shots, ``adapt_steps`` online steps, the strategy's
``adapt_lr``). ``seeds`` repeats the whole comparison per seed (report: mean, std, per
seed; see :mod:`tinyfleet.simulations.comparison`). ``per_strategy`` holds each
strategy's own settings (the tuned ones, :mod:`tinyfleet.simulations.tuning`), in generic
keys (``lr``, ``beta0``, ``clients_per_round`` ...; see :meth:`SimulationSettings.for_strategy`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from tinyfleet.device.head import params_sha256
from tinyfleet.device.learner import link_buffer_bytes, online_sgd_ram_bytes, sample_bytes_for
from tinyfleet.device.rounds import round_ram_bytes
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.fewshot import FewShotEvaluator
from tinyfleet.server.initial import initial_head_vector
from tinyfleet.server.records import vector_record
from tinyfleet.server.run import (
    quiet_flower,
    run_in_process,
    run_in_simulation_engine,
)
from tinyfleet.server.strategies import STRATEGIES, FleetStrategy
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.comparison import combine_seeds
from tinyfleet.simulations.fewshot_baselines import constant_guess_baseline
from tinyfleet.simulations.fleet import Fleet
from tinyfleet.simulations.resume import SimulateCheckpoint, resumable_evaluate
from tinyfleet.simulations.settings import (
    ALL_STRATEGIES,
    FEDERATED,
    ONLINE,
    SimulationSettings,
    settings_for,
)
from tinyfleet.simulations.usecase import UseCase, get_use_case

__all__ = [
    "ALL_STRATEGIES",
    "FEDERATED",
    "ONLINE",
    "SimulationSettings",
    "initial_head",
    "run",
    "run_seed",
    "settings_for",
]


#: ``run_strategy(strategy, theta0, rounds, evaluate_fn) -> (final, Result)``: replaces the
#: transport (e.g. the Grid a ServerApp is given by ``flwr run``: simulations/flower_app.py).
RunStrategy = Callable[[FleetStrategy, np.ndarray, int, Any], tuple[np.ndarray, Any]]


def initial_head(use_case: UseCase, seed: int) -> np.ndarray:
    """The shared starting point of every strategy (and of ``scratch``)."""
    return initial_head_vector(use_case.head_spec, seed)


def _eval_rounds(num_rounds: int, points: int) -> set[int]:
    return {int(r) for r in np.round(np.linspace(0, num_rounds, min(points, num_rounds) + 1))}


def _make_strategy(name: str, settings: SimulationSettings, plan: RoundPlan) -> FleetStrategy:
    own = settings.for_strategy(name)
    common: dict[str, Any] = {
        "num_devices": settings.devices,
        "seed": settings.seed,
        "num_rounds": settings.rounds_for(name),
        "min_available_nodes": 1,
        "clients_per_round": settings.devices_per_round(name),
    }
    beta0 = {"reptile": own.reptile_beta0, "fedavg": 1.0}.get(name, own.beta0)
    return STRATEGIES[name](plan, beta0=beta0, **common)


def run(
    settings: SimulationSettings,
    progress: Callable[[int], None] | None = None,
    use_case: UseCase | None = None,
    jobs: int = 1,
    run_strategy: RunStrategy | None = None,
    checkpoint: SimulateCheckpoint | None = None,
) -> dict[str, Any]:
    """Run every strategy of ``settings`` for every seed; return the report (see
    docs/algorithms.md and :func:`tinyfleet.simulations.comparison.combine_seeds`).

    ``progress(n)`` is called with the number of rounds just completed (a progress bar).
    ``jobs`` > 1 runs the seeds of an in-process run in that many worker processes (the
    numbers do not change: each seed's run is self-contained). ``run_strategy``, when
    given, runs each strategy instead of ``settings.transport`` (e.g. on the Grid a
    ServerApp gets from ``flwr run``: simulations/flower_app.py). ``checkpoint`` makes the
    run resumable (:mod:`tinyfleet.simulations.resume`).
    """
    quiet_flower()
    use_case = use_case or get_use_case(settings.use_case)
    seeds = settings.run_seeds
    if checkpoint is not None:
        if run_strategy is not None:
            raise UsageError("checkpoints need tinyfleet's own transports, not run_strategy")
        checkpoint.begin(settings)
    if jobs > 1 and len(seeds) > 1 and settings.transport == "inproc" and run_strategy is None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        per_seed = sum(settings.rounds_for(s) for s in settings.strategies if s != "scratch")
        with ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=mp.get_context("spawn")) as pool:
            futures = [
                pool.submit(_seed_worker, replace(settings, seed=s), checkpoint) for s in seeds
            ]
            reports = []
            for future in futures:
                reports.append(future.result())
                if progress is not None:
                    progress(per_seed)
        return _finish(combine_seeds(reports, settings, use_case), settings, reports)
    fleet = Fleet(use_case, use_case.make_backbone())
    spec = use_case.head_spec
    client_app = make_client_app(spec, fleet.stream_for_device(), fleet.macs_per_sample)
    with contextlib.ExitStack() as stack:
        mqtt_call = None
        if settings.transport == "mqtt":
            # One device client per simulated device, behind a real broker (started here
            # on a free loopback port unless settings.broker names one).
            from tinyfleet.simulations.device_cli import use_case_stream_factory
            from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet

            mqtt_fleet = stack.enter_context(
                run_mqtt_fleet(
                    spec,
                    fleet.stream_for_device(),
                    settings.devices,
                    broker_url=settings.broker,
                    macs_per_sample=fleet.macs_per_sample,
                    stream_factory=use_case_stream_factory(settings.use_case),
                )
            )
            mqtt_call = mqtt_fleet.client_call
        reports = [
            run_seed(
                replace(settings, seed=seed),
                use_case,
                fleet,
                client_app,
                mqtt_call,
                progress,
                run_strategy=run_strategy,
                checkpoint=checkpoint,
            )
            for seed in seeds
        ]
    return _finish(combine_seeds(reports, settings, use_case), settings, reports)


def _seed_worker(
    settings: SimulationSettings, checkpoint: SimulateCheckpoint | None = None
) -> dict[str, Any]:
    quiet_flower()
    use_case = get_use_case(settings.use_case)
    fleet = Fleet(use_case, use_case.make_backbone())
    app = make_client_app(use_case.head_spec, fleet.stream_for_device(), fleet.macs_per_sample)
    report = run_seed(settings, use_case, fleet, app, checkpoint=checkpoint)
    return {key: report[key] for key in ("seed", "strategies", "constant_guess")}


def _finish(
    report: dict[str, Any], settings: SimulationSettings, seeds: list[dict[str, Any]]
) -> dict[str, Any]:
    """Attach the tuner's validation metric to the strategies that run tuned settings,
    and the constant-guess baseline of the held-out devices (first seed's episodes)."""
    from tinyfleet.simulations.tuning import load_tuned_doc

    report.setdefault("fewshot_protocol", {}).update(seeds[0].get("constant_guess", {}))
    doc = load_tuned_doc(settings.use_case)
    for name, row in report["strategies"].items():
        tuned = doc.get("per_strategy", {}).get(name)
        if tuned is not None and tuned == row.get("tuned"):
            row["validation_fewshot"] = doc["validation_fewshot"][name]
    return report


def run_seed(
    settings: SimulationSettings,
    use_case: UseCase,
    fleet: Fleet,
    client_app: Any,
    mqtt_call: Callable[[Any], Any] | None = None,
    progress: Callable[[int], None] | None = None,
    evaluate: Callable[[str, np.ndarray], dict[str, float]] | None = None,
    run_strategy: RunStrategy | None = None,
    checkpoint: SimulateCheckpoint | None = None,
) -> dict[str, Any]:
    """One seed's comparison (``settings.seed``): the per-strategy rows.

    ``evaluate(name, final)``, when given, adds extra entries to each row (the tuner
    scores a final head under several adaptation learning rates without retraining)."""
    spec = use_case.head_spec
    arena = fleet.arena_bytes
    episodes = fleet.heldout_episodes(
        settings.seed,
        settings.heldout_devices,
        settings.shots,
        settings.query_size,
        split=settings.eval_split,
    )
    theta0 = initial_head(use_case, settings.seed)
    strategies: dict[str, dict[str, Any]] = {}
    for name in settings.strategies:
        started = time.perf_counter()
        own = settings.for_strategy(name) if name != "scratch" else settings
        evaluator = FewShotEvaluator(spec, episodes, own.adapt_steps, own.adapt_lr, use_case.metric)
        if name == "scratch":
            # A held-out device adapts online; it keeps its shots if it sees them again.
            kept = settings.shots if settings.adapt_steps > settings.shots else 1
            curve = evaluator.curve(theta0)
            strategies[name] = _row(curve, [], theta0, started) | {
                "rounds": 0,
                "devices_per_round": 0,
                "device_ram_bytes": online_sgd_ram_bytes(
                    spec, kept * sample_bytes_for(spec), arena
                ),
                "device_ram_link_bytes": 0,
                "device_grad_evals_per_round": 0,
                "grad_evals_total": 0,
                "bytes_up_per_device_round": 0,
                "bytes_down_per_device_round": 0,
                "rejected_replies": 0,
                "diverged": False,
            }
            continue
        done = None if checkpoint is None else checkpoint.finished_row(settings.seed, name)
        if done is not None:  # finished before the run was killed: reuse its row
            strategies[name] = done
            if progress is not None:
                progress(settings.rounds_for(name))
            continue
        plan = settings.plan_for(name, arena)
        strategy = _make_strategy(name, settings, plan)
        final, learning, diverged = _train(
            strategy,
            settings,
            own,
            episodes,
            use_case,
            theta0,
            (client_app, mqtt_call, run_strategy),
            progress,
            checkpoint,
        )
        curve = evaluator.curve(final)
        counters = strategy.counters
        replies = max(counters.accepted_replies, 1)
        down = counters.bytes_down_reported_total or counters.bytes_down_total
        up = counters.bytes_up_total // replies
        # RAM alike for every strategy: learning + the round's message buffers (the whole
        # task received, the reply and its frame), at the measured per-device-round sizes.
        link = link_buffer_bytes(down // replies, up) if counters.accepted_replies else 0
        strategies[name] = _row(curve, learning, final, started) | {
            "rounds": strategy.num_rounds,
            "devices_per_round": strategy.clients_per_round,
            "plan": asdict(plan),
            "beta0": strategy.beta0 if name != "fedavg" else None,
            "adapt_lr": own.adapt_lr,
            "device_ram_bytes": round_ram_bytes(spec, plan) + link,
            "device_ram_link_bytes": link,
            "device_grad_evals_per_round": plan.grad_evals,
            "device_macs_per_round": plan.grad_evals * spec.macs_sgd_step
            + plan.num_examples * fleet.macs_per_sample,
            "grad_evals_total": counters.grad_evals_total,
            "bytes_up_per_device_round": up,
            "bytes_down_per_device_round": down // replies,
            "rejected_replies": counters.rejected_replies,
            "max_update_ratio": counters.max_update_ratio,
            "quarantined_devices": sorted(strategy.quarantine.quarantined),
            "diverged": diverged or not bool(np.isfinite(curve[-1])),
        }
        if evaluate is not None:
            strategies[name].update(evaluate(name, final))
        if checkpoint is not None:
            checkpoint.save_row(settings.seed, name, strategies[name])
    return {
        "seed": settings.seed,
        "strategies": strategies,
        "constant_guess": constant_guess_baseline(use_case.metric, episodes),
    }


def _row(
    curve: np.ndarray, learning: list[dict[str, Any]], final: np.ndarray, started: float
) -> dict[str, Any]:
    return {
        "fewshot": float(curve[-1]),
        "fewshot_before_adaptation": float(curve[0]),
        "adaptation_curve": [float(v) for v in curve],
        "learning_curve": learning,
        "wall_s": round(time.perf_counter() - started, 3),
        "final_params_sha256": params_sha256(final),
    }


def _train(
    strategy: FleetStrategy,
    settings: SimulationSettings,
    own: SimulationSettings,
    episodes: list[Any],
    use_case: UseCase,
    theta0: np.ndarray,
    transports: tuple[Any, Callable[[Any], Any] | None, RunStrategy | None],
    progress: Callable[[int], None] | None,
    checkpoint: SimulateCheckpoint | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]], bool]:
    """Run ``strategy``; return the final head, the learning curve and whether it
    diverged (its last round's replies were all rejected, e.g. NaN updates). With
    ``checkpoint``, save it as it goes and continue a killed run of it."""
    rounds = strategy.num_rounds
    # Round -> the evaluation's metrics, and the accepted replies of the last round: kept
    # in the checkpoint so that a resumed run reports the same curve.
    state: dict[str, Any] = {"evaluations": {}, "accepted_last": 0}
    start, left = theta0, rounds
    if checkpoint is not None:
        from tinyfleet.server import checkpoint as server_checkpoint

        unit = checkpoint.unit(settings.seed, strategy.name)
        resume = checkpoint.resume and checkpoint.has_checkpoint(settings.seed, strategy.name)
        if resume:
            saved = server_checkpoint.load(unit)
            state.update((saved or {}).get("extra", {}))
        start, left = server_checkpoint.prepare(
            strategy, unit, every=checkpoint.every, resume=resume,
            settings={"strategy": strategy.name, "seed": settings.seed}, initial=theta0,
            extra=lambda: state,
        )  # fmt: skip
    offset = strategy.round_offset
    saving = strategy.on_round_end

    def round_end(server_round: int, theta: np.ndarray) -> None:
        state["accepted_last"] = strategy.counters.accepted_replies - state.get("accepted", 0)
        state["accepted"] = strategy.counters.accepted_replies
        if saving is not None:
            saving(server_round, theta)

    state["accepted"] = strategy.counters.accepted_replies
    strategy.on_round_end = round_end
    curve_evaluator = FewShotEvaluator(
        use_case.head_spec,
        episodes[: settings.eval_devices],
        own.adapt_steps,
        own.adapt_lr,
        use_case.metric,
    )

    def on_round(server_round: int) -> None:
        if progress is not None and server_round > offset:
            progress(1)

    if progress is not None and offset:
        progress(offset)
    evaluate_fn = resumable_evaluate(
        curve_evaluator.evaluate_fn(_eval_rounds(rounds, settings.eval_points), on_round),
        offset,
        state["evaluations"],
    )
    client_app, mqtt_call, run_strategy = transports
    final = start
    if left == 0:  # killed after its last checkpoint: only the last evaluation may be due
        evaluate_fn(0, vector_record(start))
    elif run_strategy is not None:
        final, _ = run_strategy(strategy, start, left, evaluate_fn)
    elif settings.transport == "inproc":
        final, _ = run_in_process(strategy, client_app, settings.devices, start, left, evaluate_fn)
    elif mqtt_call is not None:
        final, _ = run_in_process(
            strategy,
            mqtt_call,
            settings.devices,
            start,
            left,
            evaluate_fn,
            max_concurrent=strategy.clients_per_round,
        )
    else:
        final, _ = run_in_simulation_engine(
            strategy, client_app, settings.devices, start, left, evaluate_fn
        )
    per_round_evals = strategy.clients_per_round * strategy.plan.grad_evals
    learning = [
        {
            "round": int(r),
            "grad_evals": int(r) * per_round_evals,
            "fewshot": float(m["fewshot"]),
            "before_adaptation": float(m["before"]),
        }
        for r, m in sorted((int(r), m) for r, m in state["evaluations"].items())
    ]
    diverged = strategy.counters.rejected_replies > 0 and state["accepted_last"] == 0
    return final, learning, diverged
