"""The report of a comparison over several seeds: mean, spread and the whole cost picture.

:func:`combine_seeds` turns one :func:`~tinyfleet.simulations.runner.run_seed` report per
seed into ``report.json``'s content. Per strategy:

* quality: ``fewshot_mean``, ``fewshot_std`` (sample std over seeds, 0 for one seed),
  ``fewshot_per_seed``; ``fewshot`` = the mean; learning and adaptation curves are means
  over seeds with a ``*_std`` beside them;
* costs (the same for every seed): ``devices_per_round``, ``device_ram_bytes`` (learning
  + message buffers; ``device_ram_link_bytes`` is the latter part),
  ``device_grad_evals_per_round``, ``device_macs_per_round``, ``bytes_up_per_device_round``
  and ``bytes_down_per_device_round`` (the encoded wire messages, see
  :func:`tinyfleet.device.rounds.run_reply_round`), ``grad_evals_total``;
* ``diverged`` (any seed whose last round's replies were all rejected, or whose few-shot
  metric is not finite) and ``diverged_seeds``;
* ``tuned``: the strategy's own settings (``per_strategy``), when it has any.

``comparison`` holds what a reader checks: equal compute (max/min of ``grad_evals_total``
<= 1.10), and each strategy's quality and costs relative to the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FEDERATED = ("tinyreptile", "tinymetafed", "reptile", "fedavg")
BASELINES = ("reptile", "fedavg")
#: Costs shown beside quality (report.md's cost table, the Pareto plot).
COSTS = (
    ("devices_per_round", "devices/round"),
    ("device_ram_bytes", "device RAM B"),
    ("device_grad_evals_per_round", "grad evals/device-round"),
    ("bytes_up_per_device_round", "bytes up/device-round"),
    ("bytes_down_per_device_round", "bytes down/device-round"),
)


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _mean_curve(curves: list[list[float]]) -> tuple[list[float], list[float]]:
    n = min(len(c) for c in curves)
    arr = np.asarray([c[:n] for c in curves], dtype=np.float64)
    std = np.std(arr, axis=0, ddof=1) if len(curves) > 1 else np.zeros(n)
    return [float(v) for v in arr.mean(axis=0)], [float(v) for v in std]


def combine_seeds(
    reports: Sequence[Mapping[str, Any]], settings: Any, use_case: Any | None = None
) -> dict[str, Any]:
    """One report over all seeds (see the module docstring)."""
    from dataclasses import asdict

    seeds = [int(r["seed"]) for r in reports]
    strategies: dict[str, dict[str, Any]] = {}
    for name in reports[0]["strategies"]:
        rows = [r["strategies"][name] for r in reports]
        per_seed = [float(row["fewshot"]) for row in rows]
        adapt, adapt_std = _mean_curve([row["adaptation_curve"] for row in rows])
        out = dict(rows[0])
        out.update(
            {
                "fewshot": float(np.mean(per_seed)),
                "fewshot_mean": float(np.mean(per_seed)),
                "fewshot_std": _std(per_seed),
                "fewshot_per_seed": per_seed,
                "fewshot_before_adaptation": float(
                    np.mean([row["fewshot_before_adaptation"] for row in rows])
                ),
                "adaptation_curve": adapt,
                "adaptation_curve_std": adapt_std,
                "learning_curve": _mean_learning([row["learning_curve"] for row in rows]),
                "final_params_sha256_per_seed": [row["final_params_sha256"] for row in rows],
                "rejected_replies": int(sum(row["rejected_replies"] for row in rows)),
                "diverged": any(row["diverged"] for row in rows),
                "diverged_seeds": [
                    s for s, row in zip(seeds, rows, strict=True) if row["diverged"]
                ],
                "wall_s": round(float(sum(row["wall_s"] for row in rows)), 3),
            }
        )
        if name in settings.per_strategy:
            out["tuned"] = dict(settings.per_strategy[name])
        for key in ("validation_fewshot", "validation_fewshot_std"):
            if key in rows[0]:
                out[key] = rows[0][key]
        strategies[name] = out
    metric = use_case.metric if use_case is not None else reports[0].get("metric", "mse")
    report: dict[str, Any] = {
        "use_case": settings.use_case,
        "seed": seeds[0],
        "seeds": seeds,
        "metric": metric,
        "transport": settings.transport,
        "settings": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()
        },
        "fewshot_protocol": {
            "heldout_devices": settings.heldout_devices,
            "split": settings.eval_split,
            "shots": settings.shots,
            "adapt_steps": settings.adapt_steps,
            "adapt_lr": settings.adapt_lr,
            "adapt_lr_per_strategy": {
                n: s.get("adapt_lr", settings.adapt_lr) for n, s in strategies.items()
            },
            "query_size": settings.query_size,
            "learning_curve_heldout_devices": min(settings.eval_devices, settings.heldout_devices),
        },
        "budget_grad_evals": settings.budget,
        "strategies": strategies,
        "comparison": compare(strategies, metric),
    }
    if use_case is not None:
        spec = use_case.head_spec
        report["head"] = spec.to_dict() | {"num_params": spec.num_params}
    return report


def _mean_learning(curves: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if not curves or not curves[0]:
        return []
    n = min(len(c) for c in curves)
    out = []
    for i in range(n):
        points = [c[i] for c in curves]
        values = [float(p["fewshot"]) for p in points]
        out.append(
            {
                "round": points[0]["round"],
                "grad_evals": points[0]["grad_evals"],
                "fewshot": float(np.mean(values)),
                "fewshot_std": _std(values),
                "before_adaptation": float(np.mean([p["before_adaptation"] for p in points])),
            }
        )
    return out


def better(metric: str, a: float, b: float) -> bool:
    """Whether quality ``a`` beats ``b`` (lower mse, higher accuracy)."""
    return a < b if metric == "mse" else a > b


def compare(strategies: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, Any]:
    """Ratios the report's readers check (only for the strategies that ran)."""
    out: dict[str, Any] = {}
    fed = {n: s for n, s in strategies.items() if n in FEDERATED}
    totals = [s["grad_evals_total"] for s in fed.values()]
    if len(totals) >= 2 and min(totals) > 0:
        out["grad_evals_total_max_over_min"] = max(totals) / min(totals)
        out["equal_compute_within_10pct"] = max(totals) / min(totals) <= 1.10
    out["diverged"] = [n for n, s in strategies.items() if s.get("diverged")]
    ranked = sorted(
        (n for n in fed if np.isfinite(fed[n]["fewshot"])),
        key=lambda n: fed[n]["fewshot"] * (1 if metric == "mse" else -1),
    )
    if ranked:
        out["best_fewshot_mean"] = ranked[0]
    key = "ratio" if metric == "mse" else "difference"
    for mine in ("tinyreptile", "tinymetafed"):
        if mine not in strategies:
            continue
        own = strategies[mine]
        for other in ("scratch", "fedavg", "reptile"):
            if other in strategies:
                theirs = strategies[other]["fewshot"]
                value = own["fewshot"] / theirs if metric == "mse" else own["fewshot"] - theirs
                out[f"{mine}_fewshot_{key}_vs_{other}"] = value
    baselines = [n for n in BASELINES if n in strategies and np.isfinite(strategies[n]["fewshot"])]
    if "tinymetafed" in strategies and baselines:
        tmf = strategies["tinymetafed"]
        best = min(
            (strategies[n]["fewshot"] for n in baselines),
            key=lambda v: v if metric == "mse" else -v,
        )
        rel = tmf["fewshot"] / best if metric == "mse" else tmf["fewshot"] / best
        out["tinymetafed_fewshot_vs_best_baseline"] = rel
        out["tinymetafed_within_10pct_of_best_baseline"] = (
            rel <= 1.10 if metric == "mse" else rel >= 0.90
        )
        if "fedavg" in strategies and strategies["fedavg"]["bytes_up_per_device_round"]:
            out["tinymetafed_bytes_up_ratio_vs_fedavg"] = (
                tmf["bytes_up_per_device_round"] / strategies["fedavg"]["bytes_up_per_device_round"]
            )
        if "tinyreptile" in strategies:
            tiny = strategies["tinyreptile"]
            out["tinymetafed_ram_ratio_vs_tinyreptile"] = (
                tmf["device_ram_bytes"] / tiny["device_ram_bytes"]
            )
            # The same without the message buffers: what it would be if both devices
            # streamed their messages (theta's copy is then TinyMetaFed's extra).
            out["tinymetafed_ram_ratio_vs_tinyreptile_without_link_buffers"] = (
                tmf["device_ram_bytes"] - tmf.get("device_ram_link_bytes", 0)
            ) / (tiny["device_ram_bytes"] - tiny.get("device_ram_link_bytes", 0))
    if "tinyreptile" in strategies and "reptile" in strategies:
        tiny, reptile = strategies["tinyreptile"], strategies["reptile"]
        out["tinyreptile_ram_ratio_vs_reptile"] = (
            tiny["device_ram_bytes"] / reptile["device_ram_bytes"]
        )
        out["tinyreptile_grad_evals_per_round_ratio_vs_reptile"] = (
            tiny["device_grad_evals_per_round"] / reptile["device_grad_evals_per_round"]
        )
    return out
