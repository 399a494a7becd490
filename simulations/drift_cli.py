"""``tinyfleet drift USE_CASE``: learning under field drift; report.json, report.md, plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tinyfleet.errors import InputFileError

DRIFT_HELP = """\
A device deployed in the field keeps receiving a stream whose distribution shifts at
three marked drift points (presence: sensor offset drift, a new ventilation regime, a
season change; sine: amplitude/phase walk; digits: rotation drift); a label arrives for
a fraction of its samples. Compared by prequential (test-then-train) metric: the static
deployed model (meta-learned, adapted while commissioned, frozen from the first drift
point), online learning from the scratch head, online learning from the TinyReptile
(meta-learned) initialisation, and the same going back to that initialisation at each
drift point (meta_reset). Writes OUT/report.json, OUT/report.md and
OUT/drift_curve.png (metric over the stream, drift points marked).
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "drift",
        help="online learning under field drift: static vs. scratch vs. meta-learned",
        description=DRIFT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("use_case", metavar="USE_CASE", help="sine, digits or presence")
    p.add_argument("--out", type=Path, help="report folder (default ./tinyfleet-drift-USE_CASE)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--devices", type=int, help="deployed devices averaged (use case default)")
    p.add_argument("--segment-length", type=int, help="samples between drift points")
    p.add_argument(
        "--label-fraction", type=float, default=0.25, help="share of samples labelled (0.25)"
    )
    p.add_argument("--window", type=int, help="samples per metric window (use case default)")
    p.add_argument("--lr", type=float, help="online SGD step (default: the use case's adapt lr)")
    p.add_argument("--meta-rounds", type=int, help="TinyReptile rounds (use case default)")
    p.add_argument("--meta-devices", type=int, help="TinyReptile training devices")
    p.set_defaults(func=drift_command)


def drift_command(args: argparse.Namespace) -> int:
    from tinyfleet.errors import UsageError
    from tinyfleet.simulations.drift import DriftSettings, run_drift
    from tinyfleet.simulations.drift_streams import SCENARIOS
    from tinyfleet.simulations.usecase import get_use_case

    if args.use_case not in SCENARIOS:  # before any training or export
        raise UsageError(
            f"no drift scenario for {args.use_case!r}; choose from {', '.join(sorted(SCENARIOS))}"
        )
    settings = DriftSettings(
        use_case=args.use_case,
        seed=args.seed,
        devices=args.devices,
        segment_length=args.segment_length,
        label_fraction=args.label_fraction,
        window=args.window,
        lr=args.lr,
        meta_rounds=args.meta_rounds,
        meta_devices=args.meta_devices,
    )
    report = run_drift(settings, get_use_case(args.use_case))
    out = args.out if args.out is not None else Path(f"tinyfleet-drift-{args.use_case}")
    paths = write_drift_report(report, out)
    for row in report["targets"]:
        print(
            f"drift at {row['drift_point']:5d}: labels to recover: meta_online "
            f"{_n(row['meta_labels'])}, meta_reset {_n(row['meta_reset_labels'])}, "
            f"scratch_online {_n(row['scratch_labels'])}; static back to its commissioned "
            f"level: {row['static_back_to_commissioned_level']}"
        )
    print(f"report: {paths[0]}")
    return 0


def _n(value: Any) -> str:
    return "never" if value is None else f"{value:.1f}"


def write_drift_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputFileError(f"cannot create report folder {out_dir}: {error.strerror}") from None
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = out_dir / "report.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path, plot(report, out_dir)]


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    metric = report["metric"]
    lines = [
        f"# tinyfleet drift {report['use_case']} (seed {report['seed']})",
        "",
        f"{s['devices']} deployed devices, {s['segment_length']} samples per segment, "
        f"drift points at {report['drift_points']}; {s['label_fraction']:.0%} of samples "
        f"labelled ({report['labels_per_device']:.0f} per device); prequential {metric} "
        f"over windows of {s['window']} samples; online lr {s['lr']}. Drifts (device 0): "
        f"{'; '.join(report['drift_labels'][0])}.",
        "",
        "| method | " + " | ".join(f"segment {i} {metric}" for i in range(4)) + " |",
        "|---|" + "---|" * 4,
    ]
    for name, row in report["methods"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in row["segment_mean"]) + " |")
    lines += [
        "",
        "Recovery to within 5% of the pre-drift metric (labelled samples after the drift "
        "point, mean over devices; 'never' = not before the next drift point):",
        "",
        "| drift point | meta_online | meta_reset | scratch_online | static | "
        "static back to commissioned |",
        "|---|---|---|---|---|---|",
    ]
    static = report["methods"]["static"]["recovery"]
    for i, row in enumerate(report["targets"]):
        lines.append(
            f"| {row['drift_point']} | {_n(row['meta_labels'])} | "
            f"{_n(row['meta_reset_labels'])} | {_n(row['scratch_labels'])} "
            f"| {_n(static[i]['labelled_to_recover'])} | "
            f"{row['static_back_to_commissioned_level']} |"
        )
    lines += ["", "Plot: `drift_curve.png`.", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    for name, row in report["methods"].items():
        ax.plot(row["curve"], label=name, lw=1.2)
    labels = report["drift_labels"][0]
    for point, label in zip(report["drift_points"], labels, strict=True):
        ax.axvline(point, color="black", ls="--", lw=0.8)
        ax.text(point, ax.get_ylim()[1], f" {label}", va="top", fontsize=8, rotation=90)
    metric = report["metric"]
    ax.set_xlabel("sample on the deployed device")
    ax.set_ylabel(f"prequential {metric} (window {report['settings']['window']})")
    if metric != "accuracy":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left" if metric == "accuracy" else "upper left")
    ax.set_title(f"{report['use_case']}: learning under field drift")
    fig.tight_layout()
    path = out_dir / "drift_curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
