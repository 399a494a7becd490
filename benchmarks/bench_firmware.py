"""Firmware speed: instructions per MAC of the int8 kernels in QEMU, DSP vs reference.

Run:  .venv/bin/python benchmarks/bench_firmware.py [--model M.tflite ...] [--target T ...]

For each model (default: the digits backbone, exported once if missing) and each QEMU
target (default: qemu-mps2-an386, the Cortex-M4F of the Nano 33 BLE Sense), the
firmware is generated, linked and run under ``qemu-system-arm -icount shift=0``
(deterministic: one instruction per virtual nanosecond, counted with SysTick), once
with the reference kernels and once with the DSP kernels, in the same run. Prints
instructions per inference and per MAC, flash and RAM, and the DSP/reference ratio.
These are instructions, not cycles: QEMU has no cycle model. Outputs are checked
bit-exact against the TFLM interpreter by the test suite, not here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfleet.device.head import HeadSpec
from tinyfleet.firmware.report import ModelReport, report_model
from tinyfleet.firmware.targets import TARGETS


def _digits_backbone() -> Path:
    from tinyfleet.simulations.usecases import digits

    directory = digits.model_dir()
    digits.load_backbone(directory)  # exports once if missing
    return directory / "backbone.tflite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", help="int8 .tflite (repeatable)")
    parser.add_argument("--target", action="append", help="QEMU target (repeatable)")
    args = parser.parse_args()
    models = args.model or [_digits_backbone()]
    targets = args.target or ["qemu-mps2-an386"]
    print(
        f"{'model':<28} {'target':<16} {'MACs':>8} {'ref insns':>10} {'ref/MAC':>8} "
        f"{'dsp insns':>10} {'dsp/MAC':>8} {'dsp/ref':>8} {'flash ref/dsp':>14} {'arena':>6}"
    )
    for model in models:
        for target in targets:
            rows: dict[str, ModelReport] = {}
            for kernels in ("reference", "dsp"):
                if kernels == "dsp" and TARGETS[target].kernels == "reference":
                    continue  # no DSP extension on this core
                # a fixed small head: only the inference figures matter here
                head = HeadSpec((_output_size(model), 5), "relu", "softmax_ce")
                rows[kernels] = report_model(model, head, reps=2, target=target, kernels=kernels)
            ref, dsp = rows["reference"], rows.get("dsp")
            name = f"{model.parent.name}/{model.name}"
            line = (
                f"{name:<28} {target:<16} {ref.macs_per_inference:>8} "
                f"{ref.insns_per_inference:>10} {ref.insns_per_mac:>8.2f} "
            )
            if dsp is not None:
                line += (
                    f"{dsp.insns_per_inference:>10} {dsp.insns_per_mac:>8.2f} "
                    f"{dsp.insns_per_inference / ref.insns_per_inference:>8.3f} "
                    f"{f'{ref.flash_bytes}/{dsp.flash_bytes}':>14} {dsp.arena_bytes:>6}"
                )
            else:
                line += f"{'-':>10} {'-':>8} {'-':>8} {ref.flash_bytes:>14} {ref.arena_bytes:>6}"
            print(line, flush=True)


def _output_size(model: Path) -> int:
    from tinyfleet.firmware.codegen import generate_model_file

    return generate_model_file(model).output_size


if __name__ == "__main__":
    main()
