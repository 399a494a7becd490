"""The tuning protocol: every strategy searched with the same effort, at the same compute.

``tinyfleet simulate USE_CASE --tune``:

1. For every federated strategy, every candidate of its grid (:data:`GRIDS`: device lr,
   outer step beta0, devices per round, stored samples, epochs, batch size incl. 1, and
   TinyMetaFed's reconstruction steps) trains ONCE at the run's equal-compute budget
   (``rounds * k`` gradient evaluations, seed :data:`TUNE_SEED`), on the training devices.
2. Each final head is adapted on VALIDATION devices (their own split, disjoint from the
   training and the held-out test devices) under every adaptation lr of
   :func:`adapt_lrs` (half, the same and double the use case's); no retraining is needed
   for that.
3. The candidate x adaptation lr with the best validation metric is the strategy's
   tuned setting. They are saved with the use case (``simulations/usecases/
   <use case>_tuned.json``): a plain ``simulate`` reads them, so it reproduces them
   without re-tuning.
4. ``simulate`` then evaluates the tuned settings on the held-out test devices, per seed.

Every training run is cached on disk (``.tinyfleet-cache/tune-<use case>.json`` under the
working directory, keyed by the settings that decide it), so a repeated or extended
search only trains what is new.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import (
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.server.fewshot import FewShotEvaluator

USECASES_DIR = Path(__file__).resolve().parent / "usecases"
TUNE_SEED = 0
VALIDATION_DEVICES = 50
#: Adaptation lrs tried on each final head: half, the same and double the use case's.
ADAPT_LR_FACTORS = (0.5, 1.0, 2.0)

# Candidates per strategy (generic keys, see SimulationSettings.for_strategy). The
# hand-found settings of DESIGN.md are in them, so the tuned ones can only be as good or
# better on validation devices.
_SINE_GRID: dict[str, list[dict[str, Any]]] = {
    "tinyreptile": [
        {"lr": 0.02, "beta0": 1.0},
        {"lr": 0.03, "beta0": 1.0},
        {"lr": 0.01, "beta0": 1.0},
        {"lr": 0.02, "beta0": 0.5},
    ],
    "tinymetafed": [
        {"lr": 0.02, "beta0": 1.0, "recon_steps": 0},
        {"lr": 0.03, "beta0": 1.0, "recon_steps": 0},
        {"lr": 0.02, "beta0": 1.0, "recon_steps": 3},
    ],
    "reptile": [
        {
            "clients_per_round": 1,
            "support_size": 10,
            "epochs": 5,
            "batch_size": 1,
            "lr": 0.02,
            "beta0": 1.0,
        },
        {
            "clients_per_round": 1,
            "support_size": 10,
            "epochs": 5,
            "batch_size": 1,
            "lr": 0.03,
            "beta0": 1.0,
        },
        {
            "clients_per_round": 1,
            "support_size": 10,
            "epochs": 5,
            "batch_size": 1,
            "lr": 0.02,
            "beta0": 0.5,
        },
        {
            "clients_per_round": 5,
            "support_size": 10,
            "epochs": 1,
            "batch_size": 1,
            "lr": 0.02,
            "beta0": 1.0,
        },
    ],
    "fedavg": [
        {"clients_per_round": 5, "support_size": 10, "epochs": 1, "batch_size": 1, "lr": 0.03},
        {"clients_per_round": 5, "support_size": 10, "epochs": 1, "batch_size": 1, "lr": 0.02},
        {"clients_per_round": 5, "support_size": 10, "epochs": 1, "batch_size": 1, "lr": 0.05},
        {"clients_per_round": 1, "support_size": 10, "epochs": 1, "batch_size": 1, "lr": 0.03},
        {"clients_per_round": 5, "support_size": 50, "epochs": 1, "batch_size": 10, "lr": 0.07},
    ],
}
_DIGITS_GRID: dict[str, list[dict[str, Any]]] = {
    "tinyreptile": [{"lr": 0.05, "beta0": 0.3}, {"lr": 0.05, "beta0": 1.0}],
    "tinymetafed": [{"lr": 0.05, "beta0": 0.3, "recon_steps": 0}],
    "reptile": [
        {
            "clients_per_round": 1,
            "support_size": 10,
            "epochs": 5,
            "batch_size": 1,
            "lr": 0.05,
            "beta0": 1.0,
        },
        {
            "clients_per_round": 5,
            "support_size": 50,
            "epochs": 1,
            "batch_size": 10,
            "lr": 0.2,
            "beta0": 1.0,
        },
    ],
    "fedavg": [
        {"clients_per_round": 5, "support_size": 10, "epochs": 1, "batch_size": 1, "lr": 0.05},
        {"clients_per_round": 5, "support_size": 50, "epochs": 1, "batch_size": 10, "lr": 0.2},
    ],
}
# Presence (reduced to 9 trials so that --tune fits in ~10 min on 2 cores): the former
# hand-picked settings (device lr tuned on the held-out rooms) and their batch-1 forms.
_PRESENCE_GRID: dict[str, list[dict[str, Any]]] = {
    "tinyreptile": [
        {"lr": 0.05, "beta0": 0.5},
        {"lr": 0.1, "beta0": 0.5},
        {"lr": 0.05, "beta0": 1.0},
    ],
    "tinymetafed": [{"lr": 0.05, "beta0": 0.5, "recon_steps": 0}],
    "reptile": [
        {"clients_per_round": 5, "support_size": 50, "epochs": 1, "batch_size": 10, "lr": 0.5},
        {
            "clients_per_round": 1,
            "support_size": 10,
            "epochs": 5,
            "batch_size": 1,
            "lr": 0.1,
            "beta0": 1.0,
        },
    ],
    "fedavg": [
        {"clients_per_round": 5, "support_size": 50, "epochs": 1, "batch_size": 10, "lr": 0.5},
        {"clients_per_round": 5, "support_size": 10, "epochs": 1, "batch_size": 1, "lr": 0.1},
    ],
}
# Keyword audio (9 trials, as presence): the former hand-picked settings and batch-1 forms.
_KWS_GRID: dict[str, list[dict[str, Any]]] = {
    "tinyreptile": [
        {"lr": 0.05, "beta0": 0.3},
        {"lr": 0.1, "beta0": 0.3},
        {"lr": 0.05, "beta0": 1.0},
    ],
    "tinymetafed": [{"lr": 0.05, "beta0": 0.3, "recon_steps": 0}],
    "reptile": [
        {"clients_per_round": 5, "support_size": 50, "epochs": 1, "batch_size": 10, "lr": 0.2},
        {
            "clients_per_round": 1,
            "support_size": 10,
            "epochs": 5,
            "batch_size": 1,
            "lr": 0.05,
            "beta0": 1.0,
        },
    ],
    "fedavg": [
        {"clients_per_round": 5, "support_size": 50, "epochs": 1, "batch_size": 10, "lr": 0.2},
        {"clients_per_round": 5, "support_size": 10, "epochs": 1, "batch_size": 1, "lr": 0.05},
    ],
}
GRIDS = {
    "sine": _SINE_GRID,
    "digits": _DIGITS_GRID,
    "presence": _PRESENCE_GRID,
    "kws": _KWS_GRID,
}


def tuned_path(use_case: str) -> Path:
    return USECASES_DIR / f"{use_case}_tuned.json"


def load_tuned_doc(use_case: str) -> dict[str, Any]:
    path = tuned_path(use_case)
    return dict(json.loads(path.read_text())) if path.exists() else {}


def load_tuned(use_case: str) -> dict[str, dict[str, Any]]:
    """The saved per-strategy settings of ``use_case`` ({} when it was never tuned)."""
    doc = load_tuned_doc(use_case)
    return {str(k): dict(v) for k, v in doc.get("per_strategy", {}).items()}


def adapt_lrs(settings: Any) -> tuple[float, ...]:
    """The adaptation learning rates a trial is scored under."""
    return tuple(round(float(settings.adapt_lr) * f, 6) for f in ADAPT_LR_FACTORS)


def _key(settings: Any, name: str, candidate: Mapping[str, Any]) -> str:
    base = asdict(settings)
    for k in (
        "per_strategy",
        "strategies",
        "seeds",
        "transport",
        "broker",
        "eval_points",
        "eval_devices",
    ):
        base.pop(k, None)
    text = json.dumps(
        [base, name, dict(candidate), adapt_lrs(settings)], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@contextlib.contextmanager
def _executor(jobs: int) -> Iterator[Executor]:
    if jobs <= 1:
        with ThreadPoolExecutor(max_workers=1) as pool:  # in this process, one at a time
            yield pool
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            yield pool


def _trial(base: Any, name: str, candidate: Mapping[str, Any]) -> dict[str, Any]:
    """Train ``name`` with ``candidate`` once; score it on the validation devices under
    every adaptation lr (module docstring, steps 1-2)."""
    from tinyfleet.server.run import quiet_flower
    from tinyfleet.simulations.clientapp import make_client_app
    from tinyfleet.simulations.fleet import Fleet
    from tinyfleet.simulations.runner import run_seed
    from tinyfleet.simulations.usecase import get_use_case

    quiet_flower()
    use_case = get_use_case(base.use_case)
    fleet = Fleet(use_case, use_case.make_backbone())
    spec = use_case.head_spec
    client_app = make_client_app(spec, fleet.stream_for_device(), fleet.macs_per_sample)
    episodes = fleet.heldout_episodes(
        base.seed, base.heldout_devices, base.shots, base.query_size, split="validation"
    )

    def score(_: str, final: np.ndarray) -> dict[str, Any]:
        scores = {}
        for lr in adapt_lrs(base):
            evaluator = FewShotEvaluator(spec, episodes, base.adapt_steps, lr, use_case.metric)
            scores[str(lr)] = float(evaluator.curve(final)[-1])
        return {"validation_by_adapt_lr": scores}

    one = replace(base, strategies=(name,), per_strategy={name: dict(candidate)})
    row = run_seed(one, use_case, fleet, client_app, evaluate=score)["strategies"][name]
    return {
        "validation_by_adapt_lr": row["validation_by_adapt_lr"],
        "grad_evals_total": row["grad_evals_total"],
        "diverged": row["diverged"],
        "wall_s": row["wall_s"],
    }


def tune(
    settings: Any,
    *,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
    save: bool = True,
    jobs: int = 1,
) -> dict[str, Any]:
    """Search every strategy's grid (see the module docstring); return and save the doc."""
    from tinyfleet.simulations.usecase import get_use_case

    use_case = get_use_case(settings.use_case)
    grid = GRIDS.get(use_case.name)
    if grid is None:
        raise ValueError(f"no tuning grid for use case {use_case.name!r}")
    cache_path = Path(cache_dir or ".tinyfleet-cache") / f"tune-{use_case.name}.json"
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    base = replace(
        settings,
        seed=TUNE_SEED,
        seeds=(),
        eval_split="validation",
        heldout_devices=VALIDATION_DEVICES,
        eval_points=1,
        transport="inproc",
        per_strategy={},
    )

    sign = 1.0 if use_case.metric == "mse" else -1.0
    chosen: dict[str, dict[str, Any]] = {}
    validation: dict[str, float] = {}
    trials: dict[str, list[dict[str, Any]]] = {}
    started = time.perf_counter()
    names = [s for s in settings.strategies if s in grid]
    todo = [(name, c) for name in names for c in grid[name] if _key(base, name, c) not in cache]
    # Trials are independent: run them in ``jobs`` worker processes (results cached as
    # they arrive, so an interrupted search resumes where it stopped).
    with _executor(jobs) as pool:
        futures = {pool.submit(_trial, base, name, c): (name, c) for name, c in todo}
        for future in as_completed(futures):
            name, candidate = futures[future]
            cache[_key(base, name, candidate)] = future.result()
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1))
            log(f"tune {name} {candidate}: done ({time.perf_counter() - started:.0f} s)")
    for name in names:
        trials[name] = []
        for candidate in grid[name]:
            result = cache[_key(base, name, candidate)]
            for lr, value in result["validation_by_adapt_lr"].items():
                ok = np.isfinite(value) and not result["diverged"]
                trials[name].append(
                    {**candidate, "adapt_lr": float(lr), "validation": value, "ok": bool(ok)}
                )
            log(
                f"tune {name} {candidate}: validation "
                f"{ {k: round(v, 4) for k, v in result['validation_by_adapt_lr'].items()} }"
            )
        good = [t for t in trials[name] if t["ok"]]
        if good:
            best = min(good, key=lambda t: sign * t["validation"])
            chosen[name] = {k: v for k, v in best.items() if k not in ("validation", "ok")}
            validation[name] = float(best["validation"])
    doc = {
        "use_case": use_case.name,
        "protocol": (
            f"seed {TUNE_SEED}, {VALIDATION_DEVICES} validation devices, budget "
            f"{base.budget} grad evals per run, adaptation lr in {list(adapt_lrs(base))}"
        ),
        "budget_grad_evals": base.budget,
        "per_strategy": chosen,
        "validation_fewshot": validation,
        "trials": trials,
    }
    if save:
        tuned_path(use_case.name).write_text(json.dumps(doc, indent=2) + "\n")
    return doc
