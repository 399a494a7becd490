"""Write a simulation report: ``report.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinyfleet.errors import InputFileError

COLUMNS = (
    ("fewshot", "few-shot {metric} (after)"),
    ("fewshot_before_adaptation", "before adapt."),
    ("rounds", "rounds"),
    ("devices_per_round", "devices/round"),
    ("device_ram_bytes", "device RAM B"),
    ("device_grad_evals_per_round", "grad evals/device/round"),
    ("grad_evals_total", "grad evals total"),
    ("bytes_up_per_round", "bytes up/round"),
    ("bytes_down_per_round", "bytes down/round"),
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


def markdown(report: dict[str, Any]) -> str:
    metric = report["metric"]
    protocol = report["fewshot_protocol"]
    lines = [
        f"# tinyfleet simulate {report['use_case']} (seed {report['seed']})",
        "",
        f"Few-shot {metric} on {protocol['heldout_devices']} held-out devices never seen in "
        f"training: {protocol['shots']} shots, {protocol['adapt_steps']} online SGD steps "
        f"(lr {protocol['adapt_lr']}), measured on {protocol['query_size']} fresh query "
        f"points per device. {'Lower' if metric == 'mse' else 'Higher'} is better.",
        "",
        *(
            [
                "Guessing each held-out device's majority class scores "
                f"{protocol['majority_class_rate']:.4g} (the majority class rate).",
                "",
            ]
            if "majority_class_rate" in protocol
            else []
        ),
        "| strategy | " + " | ".join(t.format(metric=metric) for _, t in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, row in report["strategies"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row.get(k)) for k, _ in COLUMNS) + " |")
    lines += ["", "## Comparison", ""]
    for key, value in report.get("comparison", {}).items():
        lines.append(f"- `{key}`: {_fmt(value)}")
    lines += [
        "",
        "Plots: `learning_curve.png` (held-out few-shot metric during training, on "
        f"{protocol['learning_curve_heldout_devices']} held-out devices) and "
        "`adaptation_curve.png` (metric vs. adaptation step, all held-out devices).",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """``learning_curve.png`` (vs. rounds and vs. device gradient evaluations) and
    ``adaptation_curve.png`` (vs. adaptation steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = report["metric"]
    strategies = report["strategies"]
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, row in strategies.items():
        points = row.get("learning_curve") or []
        if not points:
            continue
        axes[0].plot([p["round"] for p in points], [p["fewshot"] for p in points], "o-", label=name)
        axes[1].plot(
            [p["grad_evals"] for p in points], [p["fewshot"] for p in points], "o-", label=name
        )
    if "scratch" in strategies:
        for ax in axes:
            ax.axhline(strategies["scratch"]["fewshot"], color="grey", ls="--", label="scratch")
    axes[0].set_xlabel("round")
    axes[1].set_xlabel("device gradient evaluations (all devices)")
    for ax in axes:
        ax.set_ylabel(f"held-out few-shot {metric} after adaptation")
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
        curve = row["adaptation_curve"]
        ax.plot(range(len(curve)), curve, "o-", label=name)
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
    return paths
