"""``tinyfleet simulate``: train every strategy on the same fleet, evaluate, report.

Fair comparison (default): every federated strategy gets the same total device compute.
TinyReptile runs ``rounds`` rounds of one device doing ``k`` online steps, i.e. a budget of
``rounds * k`` per-sample gradient evaluations; Reptile and FedAvg get
``round(budget / (clients_per_round * epochs * support_size))`` rounds. All strategies
start from the same initial head and are adapted on the same held-out devices in the same
way (``shots`` shots, ``adapt_steps`` online steps, ``adapt_lr``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from tinyfleet.device.head import params_sha256
from tinyfleet.device.learner import online_sgd_ram_bytes, sample_bytes_for
from tinyfleet.device.rounds import round_ram_bytes
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.fewshot import FewShotEvaluator
from tinyfleet.server.initial import initial_head_vector
from tinyfleet.server.run import (
    TRANSPORTS,
    quiet_flower,
    run_in_process,
    run_in_simulation_engine,
)
from tinyfleet.server.strategies import STRATEGIES, FleetStrategy
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.fewshot_baselines import constant_guess_baseline
from tinyfleet.simulations.fleet import Fleet
from tinyfleet.simulations.usecase import UseCase, get_use_case

FEDERATED = ("tinyreptile", "reptile", "fedavg")
ALL_STRATEGIES = (*FEDERATED, "scratch")
OPTIMIZERS = ("sgd", "adam")
#: ``run_strategy(strategy, theta0, rounds, evaluate_fn) -> (final, Result)``: replaces the
#: transport (e.g. the Grid a ServerApp is given by ``flwr run``: simulations/flower_app.py).
RunStrategy = Callable[[FleetStrategy, np.ndarray, int, Any], tuple[np.ndarray, Any]]
# A held-out device keeps its shots in RAM; use cases may set "max_shots" in defaults.
DEFAULT_MAX_SHOTS = 1000


@dataclass(frozen=True)
class SimulationSettings:
    """Everything a simulation depends on (use-case defaults fill what is not given).

    ``rounds`` is TinyReptile's number of rounds; ``baseline_rounds`` (None = derive from
    the equal-compute budget) is Reptile's and FedAvg's.
    """

    use_case: str
    devices: int
    rounds: int
    seed: int = 0
    strategies: tuple[str, ...] = ALL_STRATEGIES
    transport: str = "inproc"
    inner_lr: float = 0.02
    baseline_inner_lr: float | None = None
    k: int = 10
    beta0: float = 1.0
    reptile_beta0: float = 1.0
    support_size: int = 50
    epochs: int = 1
    batch_size: int = 10
    clients_per_round: int = 5
    optimizer: str = "sgd"
    baseline_rounds: int | None = None
    shots: int = 10
    adapt_steps: int = 10
    adapt_lr: float = 0.02
    query_size: int = 100
    heldout_devices: int = 100
    eval_points: int = 10
    eval_devices: int = 20
    max_shots: int | None = None
    broker: str | None = None

    def __post_init__(self) -> None:
        positive = (
            "devices",
            "rounds",
            "k",
            "support_size",
            "epochs",
            "batch_size",
            "clients_per_round",
            "shots",
            "query_size",
            "heldout_devices",
            "eval_points",
            "eval_devices",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise UsageError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        if self.adapt_steps < 0:
            raise UsageError(f"--adapt-steps must be >= 0, got {self.adapt_steps}")
        for name in ("inner_lr", "adapt_lr", "beta0", "reptile_beta0", "baseline_inner_lr"):
            if getattr(self, name) is None:
                continue
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if self.baseline_rounds is not None and self.baseline_rounds < 1:
            raise UsageError(f"--baseline-rounds must be >= 1, got {self.baseline_rounds}")
        if not self.strategies:
            raise UsageError("--strategies needs at least one strategy")
        unknown = [s for s in self.strategies if s not in ALL_STRATEGIES]
        if unknown:
            raise UsageError(
                f"unknown strategy {unknown[0]!r}; choose from {', '.join(ALL_STRATEGIES)}"
            )
        if len(set(self.strategies)) != len(self.strategies):
            raise UsageError("--strategies lists a strategy twice")
        if self.transport not in TRANSPORTS:
            raise UsageError(f"unknown transport {self.transport!r}; choose from {TRANSPORTS}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        limit = DEFAULT_MAX_SHOTS if self.max_shots is None else self.max_shots
        if self.shots > limit:
            raise UsageError(
                f"--shots {self.shots} is more than the {limit} samples a held-out "
                f"{self.use_case} device keeps"
            )

    @property
    def online_plan(self) -> RoundPlan:
        return RoundPlan("online", self.inner_lr, k=self.k)

    @property
    def batch_plan(self) -> RoundPlan:
        lr = self.inner_lr if self.baseline_inner_lr is None else self.baseline_inner_lr
        return RoundPlan(
            "batch",
            lr,
            support_size=self.support_size,
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
        )

    @property
    def per_round_clients(self) -> int:
        return min(self.clients_per_round, self.devices)

    def rounds_for(self, strategy: str) -> int:
        if strategy == "tinyreptile":
            return self.rounds
        if self.baseline_rounds is not None:
            return self.baseline_rounds
        budget = self.rounds * self.online_plan.grad_evals
        per_round = self.per_round_clients * self.batch_plan.grad_evals
        return max(1, int(round(budget / per_round)))


def settings_for(use_case: UseCase, **overrides: Any) -> SimulationSettings:
    """Settings from the use case's defaults, then ``overrides`` that are not None."""
    names = {f.name for f in fields(SimulationSettings)}
    values: dict[str, Any] = {k: v for k, v in use_case.defaults.items() if k in names}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["use_case"] = use_case.name
    unknown = set(values) - names
    if unknown:
        raise UsageError(f"unknown simulation settings: {', '.join(sorted(unknown))}")
    return SimulationSettings(**values)


def initial_head(use_case: UseCase, seed: int) -> np.ndarray:
    """The shared starting point of every strategy (and of ``scratch``)."""
    return initial_head_vector(use_case.head_spec, seed)


def _eval_rounds(num_rounds: int, points: int) -> set[int]:
    return {int(r) for r in np.round(np.linspace(0, num_rounds, min(points, num_rounds) + 1))}


def _make_strategy(name: str, settings: SimulationSettings, plan: RoundPlan) -> FleetStrategy:
    rounds = settings.rounds_for(name)
    common: dict[str, Any] = {
        "num_devices": settings.devices,
        "seed": settings.seed,
        "num_rounds": rounds,
        "min_available_nodes": 1,
    }
    if name == "tinyreptile":
        return STRATEGIES[name](plan, clients_per_round=1, beta0=settings.beta0, **common)
    beta0 = settings.reptile_beta0 if name == "reptile" else 1.0
    return STRATEGIES[name](
        plan, clients_per_round=settings.per_round_clients, beta0=beta0, **common
    )


def run(
    settings: SimulationSettings,
    progress: Callable[[int], None] | None = None,
    use_case: UseCase | None = None,
    run_strategy: RunStrategy | None = None,
) -> dict[str, Any]:
    """Run every strategy of ``settings``; return the report (see docs/algorithms.md).

    ``progress(n)`` is called with the number of rounds just completed (a progress bar).
    ``run_strategy``, when given, runs each strategy instead of ``settings.transport``.
    """
    quiet_flower()
    use_case = use_case or get_use_case(settings.use_case)
    embedder = use_case.make_backbone()
    fleet = Fleet(use_case, embedder)
    spec = use_case.head_spec
    episodes = fleet.heldout_episodes(
        settings.seed, settings.heldout_devices, settings.shots, settings.query_size
    )
    evaluator = FewShotEvaluator(
        spec, episodes, settings.adapt_steps, settings.adapt_lr, use_case.metric
    )
    curve_evaluator = FewShotEvaluator(
        spec,
        episodes[: settings.eval_devices],
        settings.adapt_steps,
        settings.adapt_lr,
        use_case.metric,
    )
    theta0 = initial_head(use_case, settings.seed)
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
        report = _run_strategies(
            settings,
            use_case,
            fleet,
            evaluator,
            curve_evaluator,
            theta0,
            client_app,
            mqtt_call,
            progress,
            run_strategy,
        )
    report["fewshot_protocol"].update(constant_guess_baseline(use_case.metric, episodes))
    return report


def _run_strategies(
    settings: SimulationSettings,
    use_case: UseCase,
    fleet: Fleet,
    evaluator: FewShotEvaluator,
    curve_evaluator: FewShotEvaluator,
    theta0: np.ndarray,
    client_app: Any,
    mqtt_call: Callable[[Any], Any] | None,
    progress: Callable[[int], None] | None,
    run_strategy: RunStrategy | None = None,
) -> dict[str, Any]:
    spec = use_case.head_spec
    arena = fleet.arena_bytes
    # A held-out device adapts online; it must keep its shots if it sees them more than once.
    kept = settings.shots if settings.adapt_steps > settings.shots else 1
    adapt_ram = online_sgd_ram_bytes(spec, kept * sample_bytes_for(spec), arena)

    strategies: dict[str, dict[str, Any]] = {}
    for name in settings.strategies:
        started = time.perf_counter()
        if name == "scratch":
            curve = evaluator.curve(theta0)
            strategies[name] = {
                "fewshot": float(curve[-1]),
                "fewshot_before_adaptation": float(curve[0]),
                "adaptation_curve": [float(v) for v in curve],
                "learning_curve": [],
                "rounds": 0,
                "devices_per_round": 0,
                "device_ram_bytes": adapt_ram,
                "device_grad_evals_per_round": 0,
                "grad_evals_total": 0,
                "bytes_up_per_round": 0,
                "bytes_down_per_round": 0,
                "rejected_replies": 0,
                "wall_s": round(time.perf_counter() - started, 3),
                "final_params_sha256": params_sha256(theta0),
            }
            continue
        base = settings.online_plan if name == "tinyreptile" else settings.batch_plan
        plan = replace(base, arena_bytes=arena)
        strategy = _make_strategy(name, settings, plan)
        rounds = strategy.num_rounds

        def on_round(server_round: int) -> None:
            if progress is not None and server_round > 0:
                progress(1)

        evaluate_fn = curve_evaluator.evaluate_fn(
            _eval_rounds(rounds, settings.eval_points), on_round
        )
        if run_strategy is not None:
            final, result = run_strategy(strategy, theta0, rounds, evaluate_fn)
        elif settings.transport == "inproc":
            final, result = run_in_process(
                strategy, client_app, settings.devices, theta0, rounds, evaluate_fn
            )
        elif mqtt_call is not None:
            final, result = run_in_process(
                strategy,
                mqtt_call,
                settings.devices,
                theta0,
                rounds,
                evaluate_fn,
                max_concurrent=strategy.clients_per_round,
            )
        else:
            final, result = run_in_simulation_engine(
                strategy, client_app, settings.devices, theta0, rounds, evaluate_fn
            )
        curve = evaluator.curve(final)
        counters = strategy.counters
        per_round_evals = strategy.clients_per_round * plan.grad_evals
        learning = [
            {
                "round": int(r),
                "grad_evals": int(r) * per_round_evals,
                "fewshot": float(m["fewshot"]),  # type: ignore[arg-type]
                "before_adaptation": float(m["before"]),  # type: ignore[arg-type]
            }
            for r, m in sorted(result.evaluate_metrics_serverapp.items())
        ]
        strategies[name] = {
            "fewshot": float(curve[-1]),
            "fewshot_before_adaptation": float(curve[0]),
            "adaptation_curve": [float(v) for v in curve],
            "learning_curve": learning,
            "rounds": rounds,
            "devices_per_round": strategy.clients_per_round,
            "plan": asdict(plan),
            "beta0": strategy.beta0 if name != "fedavg" else None,
            "device_ram_bytes": round_ram_bytes(spec, plan),
            "device_grad_evals_per_round": plan.grad_evals,
            "device_macs_per_round": plan.grad_evals * spec.macs_sgd_step
            + plan.num_examples * fleet.macs_per_sample,
            "grad_evals_total": counters.grad_evals_total,
            "bytes_up_per_round": counters.bytes_up_total // max(counters.rounds, 1),
            "bytes_down_per_round": counters.bytes_down_total // max(counters.rounds, 1),
            "rejected_replies": counters.rejected_replies,
            "max_update_ratio": counters.max_update_ratio,
            "quarantined_devices": sorted(strategy.quarantine.quarantined),
            "wall_s": round(time.perf_counter() - started, 3),
            "final_params_sha256": params_sha256(final),
        }
    return {
        "use_case": use_case.name,
        "seed": settings.seed,
        "metric": use_case.metric,
        "transport": settings.transport,
        "settings": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()
        },
        "head": spec.to_dict() | {"num_params": spec.num_params},
        "fewshot_protocol": {
            "heldout_devices": settings.heldout_devices,
            "shots": settings.shots,
            "adapt_steps": settings.adapt_steps,
            "adapt_lr": settings.adapt_lr,
            "query_size": settings.query_size,
            "learning_curve_heldout_devices": min(settings.eval_devices, settings.heldout_devices),
        },
        "strategies": strategies,
        "comparison": compare(strategies, use_case.metric),
    }


def compare(strategies: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, Any]:
    """Ratios the report's readers check (only for the strategies that ran)."""
    out: dict[str, Any] = {}
    totals = [s["grad_evals_total"] for n, s in strategies.items() if n in FEDERATED]
    if len(totals) >= 2 and min(totals) > 0:
        out["grad_evals_total_max_over_min"] = max(totals) / min(totals)
        out["equal_compute_within_10pct"] = max(totals) / min(totals) <= 1.10
    tiny = strategies.get("tinyreptile")
    if tiny is None:
        return out
    for other in ("scratch", "fedavg", "reptile"):
        if other in strategies:
            key = "ratio" if metric == "mse" else "difference"
            value = (
                tiny["fewshot"] / strategies[other]["fewshot"]
                if metric == "mse"
                else tiny["fewshot"] - strategies[other]["fewshot"]
            )
            out[f"tinyreptile_fewshot_{key}_vs_{other}"] = value
    if "reptile" in strategies:
        reptile = strategies["reptile"]
        out["tinyreptile_ram_ratio_vs_reptile"] = (
            tiny["device_ram_bytes"] / reptile["device_ram_bytes"]
        )
        out["tinyreptile_grad_evals_per_round_ratio_vs_reptile"] = (
            tiny["device_grad_evals_per_round"] / reptile["device_grad_evals_per_round"]
        )
    return out
