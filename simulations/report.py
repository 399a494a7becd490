"""Write a simulation report: ``report.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinyfleet.errors import InputFileError
from tinyfleet.simulations.comparison import COSTS
from tinyfleet.simulations.device_cost import COLUMNS as DEVICE_COLUMNS

COLUMNS = (
    ("rounds", "rounds"),
    *COSTS,
    ("grad_evals_total", "grad evals total"),
    ("wall_s", "wall s"),
)


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the report files into ``out_dir`` (created); return their paths."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputFileError(f"cannot create report folder {out_dir}: {error.strerror}") from None
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    md_path = out_dir / "report.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path, *plot(report, out_dir)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _quality(row: dict[str, Any]) -> str:
    mean = row.get("fewshot_mean", row["fewshot"])
    text = f"{mean:.3f} ± {row.get('fewshot_std', 0.0):.3f}"
    return text + (" **diverged**" if row.get("diverged") else "")


def markdown(report: dict[str, Any]) -> str:
    metric = report["metric"]
    protocol = report["fewshot_protocol"]
    seeds = report.get("seeds", [report["seed"]])
    comparison = report.get("comparison", {})
    lines = [
        f"# tinyfleet simulate {report['use_case']} (seeds {', '.join(map(str, seeds))})",
        "",
        f"Few-shot {metric} on {protocol['heldout_devices']} {protocol.get('split', 'heldout')}"
        f" devices never seen in training: {protocol['shots']} shots, "
        f"{protocol['adapt_steps']} online SGD steps (each strategy's adaptation lr), "
        f"measured on {protocol['query_size']} fresh query points per device. "
        f"{'Lower' if metric == 'mse' else 'Higher'} is better. Mean ± sample std over "
        f"{len(seeds)} seed(s).",
        "",
    ]
    if "majority_class_rate" in protocol:
        lines += [
            "Guessing each held-out device's majority class scores "
            f"{protocol['majority_class_rate']:.4g} (the majority class rate).",
            "",
        ]
    if "grad_evals_total_max_over_min" in comparison:
        within = comparison["equal_compute_within_10pct"]
        lines += [
            f"Equal compute: every federated strategy used "
            f"{report.get('budget_grad_evals', '?')} gradient evaluations (max/min of the "
            f"totals {comparison['grad_evals_total_max_over_min']:.3f}: "
            f"{'within' if within else 'NOT within'} 10%).",
            "",
        ]
    head = ["strategy", f"few-shot {metric}", "per seed", "validation", "adapt lr"]
    # device time and energy per round where a firmware report was given (device_cost.py)
    columns = COLUMNS + (DEVICE_COLUMNS if "firmware_costs" in report else ())
    lines += [
        "| " + " | ".join(head + [t for _, t in columns]) + " |",
        "|---|" + "---|" * (len(head) - 1 + len(columns)),
    ]
    for name, row in report["strategies"].items():
        per_seed = ", ".join(f"{v:.3f}" for v in row.get("fewshot_per_seed", [row["fewshot"]]))
        cells = [
            name,
            _quality(row),
            per_seed,
            _fmt(row.get("validation_fewshot", "-")),
            _fmt(row.get("adapt_lr", protocol["adapt_lr"])),
        ]
        lines.append("| " + " | ".join(cells + [_fmt(row.get(k)) for k, _ in columns]) + " |")
    tuned = {n: r["tuned"] for n, r in report["strategies"].items() if r.get("tuned")}
    if tuned:
        lines += ["", "## Settings per strategy (tuned on validation devices)", ""]
        for name, values in tuned.items():
            lines.append(f"- {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    lines += ["", "## Comparison", ""]
    for key, value in comparison.items():
        lines.append(f"- `{key}`: {_fmt(value)}")
    lines += [
        "",
        "Costs are per device and round: RAM from `device/learner.py` (per-sample gradient "
        "accumulation), bytes = the encoded wire messages (task down, reply up) as MQTT "
        "carries them. Plots: `learning_curve.png` (mean ± std over seeds, on "
        f"{protocol['learning_curve_heldout_devices']} held-out devices), "
        "`adaptation_curve.png`, `pareto.png` (quality vs. each cost).",
        "",
    ]
    fw = report.get("firmware_costs")
    if fw:
        lines += [
            f"Device time and energy from `{fw['source']}` ({fw['target']}, {fw['kernels']} "
            f"kernels): {fw['insns_per_inference']} instructions per backbone inference, "
            f"{fw['insns_per_sgd_step']} per head SGD step, counted in QEMU; time at the "
            "nRF52840's 64 MHz and energy at 0.156 nJ per cycle (52 uA/MHz at 3 V, nRF52840 "
            "PS v1.7 s5.4.1), one instruction per cycle: lower bounds, radio and sensors "
            "excluded.",
            "",
        ]
    return "\n".join(lines)


def plot(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """``learning_curve.png``, ``adaptation_curve.png`` and ``pareto.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metric = report["metric"]
    strategies = report["strategies"]
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, row in strategies.items():
        points = row.get("learning_curve") or []
        if not points:
            continue
        mean = np.array([p["fewshot"] for p in points])
        std = np.array([p.get("fewshot_std", 0.0) for p in points])
        for ax, xs in (
            (axes[0], [p["round"] for p in points]),
            (axes[1], [p["grad_evals"] for p in points]),
        ):
            (line,) = ax.plot(xs, mean, "o-", label=name)
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    if "scratch" in strategies:
        for ax in axes:
            ax.axhline(strategies["scratch"]["fewshot"], color="grey", ls="--", label="scratch")
    axes[0].set_xlabel("round")
    axes[1].set_xlabel("device gradient evaluations (all devices)")
    for ax in axes:
        ax.set_ylabel(f"held-out few-shot {metric} (mean ± std)")
        if metric == "mse":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{report['use_case']}: learning curve")
    fig.tight_layout()
    path = out_dir / "learning_curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in strategies.items():
        curve = np.array(row["adaptation_curve"])
        std = np.array(row.get("adaptation_curve_std", np.zeros_like(curve)))
        (line,) = ax.plot(range(len(curve)), curve, "o-", label=name)
        ax.fill_between(
            range(len(curve)), curve - std, curve + std, color=line.get_color(), alpha=0.2
        )
    ax.set_xlabel("online adaptation step on a held-out device")
    ax.set_ylabel(f"query {metric}")
    if metric == "mse":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{report['use_case']}: few-shot adaptation")
    fig.tight_layout()
    path = out_dir / "adaptation_curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)

    paths.append(pareto(report, out_dir))
    return paths


def pareto(report: dict[str, Any], out_dir: Path) -> Path:
    """``pareto.png``: few-shot quality (mean ± std) against each cost, one panel per cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = report["metric"]
    rows = {n: r for n, r in report["strategies"].items() if n != "scratch"}
    fig, axes = plt.subplots(1, len(COSTS), figsize=(4 * len(COSTS), 3.8))
    for ax, (key, title) in zip(axes, COSTS, strict=True):
        for name, row in rows.items():
            ax.errorbar(
                row.get(key, 0),
                row.get("fewshot_mean", row["fewshot"]),
                yerr=row.get("fewshot_std", 0.0),
                fmt="o",
                capsize=3,
                label=name,
            )
            ax.annotate(
                name,
                (row.get(key, 0), row.get("fewshot_mean", row["fewshot"])),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(title)
        ax.set_ylabel(f"few-shot {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"{report['use_case']}: quality vs. device cost "
        f"({'lower' if metric == 'mse' else 'higher'} is better; cheaper is left)"
    )
    fig.tight_layout()
    path = out_dir / "pareto.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
