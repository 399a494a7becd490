"""What a simulation depends on: :class:`SimulationSettings` and the use case's defaults.

Per-strategy settings (``per_strategy``) use generic keys (``lr``, ``beta0``,
``clients_per_round``, ``support_size``, ``epochs``, ``batch_size``, ``k``, ``adapt_lr``,
TinyMetaFed's ``top_p``/``local_layers``/``recon_steps``); :meth:`SimulationSettings.
for_strategy` resolves them. The equal-compute budget is ``rounds * k`` of the base
settings (TinyReptile's), whatever a strategy's own settings are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.run import TRANSPORTS
from tinyfleet.server.tinymetafed import tinymetafed_plan
from tinyfleet.simulations.usecase import UseCase

FEDERATED = ("tinyreptile", "tinymetafed", "reptile", "fedavg")
ONLINE = ("tinyreptile", "tinymetafed")  # one device per round, k online steps
ALL_STRATEGIES = (*FEDERATED, "scratch")
EVAL_SPLITS = ("heldout", "validation")
#: Generic per-strategy keys -> settings fields (online strategies, batch strategies).
_ONLINE_KEYS = {"lr": "inner_lr", "beta0": "beta0"}
_BATCH_KEYS = {"lr": "baseline_inner_lr", "beta0": "reptile_beta0"}
OPTIMIZERS = ("sgd", "adam")
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
    seeds: tuple[int, ...] = ()
    top_p: float = 0.05
    upload_int8: bool = True
    local_layers: int = 1
    recon_steps: int = 0
    theta_int8: bool = False
    eval_split: str = "heldout"
    per_strategy: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

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
        if any(int(v) < 0 for v in self.seeds):
            raise UsageError(f"--seeds must be >= 0, got {list(self.seeds)}")
        if self.eval_split not in EVAL_SPLITS:
            raise UsageError(f"unknown evaluation split {self.eval_split!r}")
        for name, over in self.per_strategy.items():
            if name not in FEDERATED:
                raise UsageError(f"per-strategy settings for unknown strategy {name!r}")
            known = {f.name for f in fields(self)} | set(_ONLINE_KEYS)
            bad = set(over) - known
            if bad:
                raise UsageError(f"unknown {name} settings: {', '.join(sorted(bad))}")
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

    @property
    def run_seeds(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.seeds) or (int(self.seed),)

    @property
    def budget(self) -> int:
        """Total per-sample gradient evaluations every federated strategy gets."""
        return self.rounds * self.k

    def for_strategy(self, strategy: str) -> SimulationSettings:
        """These settings with ``strategy``'s own (``per_strategy``) applied; generic keys
        ``lr`` / ``beta0`` map to ``inner_lr`` / ``beta0`` for online strategies and to
        ``baseline_inner_lr`` / ``reptile_beta0`` for batch ones."""
        keys = _ONLINE_KEYS if strategy in ONLINE else _BATCH_KEYS
        over = {keys.get(k, k): v for k, v in self.per_strategy.get(strategy, {}).items()}
        if not over:
            return self
        # The budget stays the base settings' (rounds * k): rescale rounds if k changes.
        if "k" in over and strategy not in ONLINE:
            over.pop("k")
        return replace(self, per_strategy={}, **over)

    def plan_for(self, strategy: str, arena_bytes: int = 0) -> RoundPlan:
        s = self.for_strategy(strategy)
        if strategy == "tinymetafed":
            return tinymetafed_plan(
                s.inner_lr,
                s.k,
                top_p=s.top_p,
                upload_int8=s.upload_int8,
                local_layers=s.local_layers,
                recon_steps=s.recon_steps,
                arena_bytes=arena_bytes,
                theta_int8=s.theta_int8,
            )
        base = s.online_plan if strategy in ONLINE else s.batch_plan
        return replace(base, arena_bytes=arena_bytes)

    def devices_per_round(self, strategy: str) -> int:
        return 1 if strategy in ONLINE else self.for_strategy(strategy).per_round_clients

    def rounds_for(self, strategy: str) -> int:
        if strategy in ONLINE and self.for_strategy(strategy).k == self.k:
            return self.rounds
        if strategy not in ONLINE and self.baseline_rounds is not None:
            return self.baseline_rounds
        per_round = self.devices_per_round(strategy) * self.plan_for(strategy).grad_evals
        return max(1, int(round(self.budget / per_round)))


def settings_for(use_case: UseCase, **overrides: Any) -> SimulationSettings:
    """Settings from the use case's defaults, then ``overrides`` that are not None."""
    names = {f.name for f in fields(SimulationSettings)}
    values: dict[str, Any] = {k: v for k, v in use_case.defaults.items() if k in names}
    if overrides.pop("tuned", True):
        from tinyfleet.simulations.tuning import load_tuned

        tuned = load_tuned(use_case.name)
        if tuned:
            values["per_strategy"] = tuned
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["use_case"] = use_case.name
    unknown = set(values) - names
    if unknown:
        raise UsageError(f"unknown simulation settings: {', '.join(sorted(unknown))}")
    return SimulationSettings(**values)
