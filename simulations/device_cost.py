"""Device time and energy per round from a saved ``tinyfleet firmware report --json``.

The firmware report counts, in QEMU, the instructions of one backbone inference and of
one head SGD step for a model on a target, and estimates their energy on the Nano 33
BLE Sense's nRF52840 (0.156 nJ per cycle: 52 uA/MHz at 3 V, nRF52840 PS v1.7 s5.4.1,
one instruction counted as one cycle, so a lower bound). A strategy's device-round is
``num_examples`` backbone inferences (each sample passes the frozen backbone once)
plus ``device_grad_evals_per_round`` head gradient evaluations, each costed as one SGD
step (for a minibatch this counts the parameter update once per sample: an upper bound
on that part). Time is instructions at the nRF52840's 64 MHz.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinyfleet.errors import InputFileError, UsageError

#: the Nano 33 BLE Sense's nRF52840 clock
NRF52840_HZ = 64_000_000
#: the firmware report row used when the file has several: the Nano's core and kernels
PREFERRED = ("qemu-mps2-an386", "dsp")
COLUMNS = (
    ("device_ms_per_round", "device ms/device-round (nRF52840)"),
    ("device_uj_per_round", "device uJ/device-round (nRF52840)"),
)
_NEEDED = (
    "insns_per_inference",
    "insns_per_sgd_step",
    "energy_uj_per_inference",
    "energy_uj_per_sgd_step",
    "head_layer_sizes",
)


def load_firmware_row(path: str | Path, head_sizes: tuple[int, ...]) -> dict[str, Any]:
    """The row of a saved firmware report for a head of ``head_sizes`` (the
    Cortex-M4F DSP row when there are several); one-line errors otherwise."""
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputFileError(f"cannot read firmware report {path}: {error}") from None
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows) or not rows:
        raise InputFileError(f"{path}: not the JSON of `tinyfleet firmware report --json`")
    for row in rows:
        missing = [key for key in _NEEDED if key not in row]
        if missing:
            raise InputFileError(f"{path}: a row lacks {', '.join(missing)}")
    matching = [r for r in rows if tuple(r["head_layer_sizes"]) == tuple(head_sizes)]
    if not matching:
        raise UsageError(
            f"{path} measures a head {rows[0]['head_layer_sizes']}, the use case's is "
            f"{list(head_sizes)}; run `tinyfleet firmware report` on this use case's model"
        )
    preferred = [r for r in matching if (r.get("target"), r.get("kernels")) == PREFERRED]
    return (preferred or matching)[0]


def add_device_costs(report: dict[str, Any], row: dict[str, Any], source: str) -> None:
    """Add ``device_insns_per_round``, ``device_ms_per_round`` and
    ``device_uj_per_round`` to every strategy of ``report``, and the figures used."""
    for strategy in report["strategies"].values():
        plan = strategy.get("plan") or {}
        inferences = int(plan.get("num_examples", 0)) if row["insns_per_inference"] else 0
        steps = int(strategy.get("device_grad_evals_per_round", 0))
        insns = inferences * int(row["insns_per_inference"]) + steps * int(
            row["insns_per_sgd_step"]
        )
        energy = inferences * float(row["energy_uj_per_inference"]) + steps * float(
            row["energy_uj_per_sgd_step"]
        )
        strategy["device_insns_per_round"] = insns
        strategy["device_ms_per_round"] = round(insns / NRF52840_HZ * 1e3, 3)
        strategy["device_uj_per_round"] = round(energy, 3)
    report["firmware_costs"] = {
        "source": source,
        "model": row.get("model"),
        "target": row.get("target"),
        "kernels": row.get("kernels"),
        "insns_per_inference": row["insns_per_inference"],
        "insns_per_sgd_step": row["insns_per_sgd_step"],
        "energy_uj_per_inference": row["energy_uj_per_inference"],
        "energy_uj_per_sgd_step": row["energy_uj_per_sgd_step"],
        "clock_hz": NRF52840_HZ,
    }
