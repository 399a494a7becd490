"""Firmware speed: instructions per MAC of the int8 kernels in QEMU, DSP vs reference.

Run:  .venv/bin/python benchmarks/bench_firmware.py [--model M.tflite ...] [--target T ...]
      [--dscnn]

For each model (default: the digits backbone, exported once if missing; ``--dscnn`` adds
a DS-CNN keyword-spotting backbone, random int8 weights, built with TensorFlow) and each QEMU
target (default: qemu-mps2-an386, the Cortex-M4F of the Nano 33 BLE Sense), the
firmware is generated, linked and run under ``qemu-system-arm -icount shift=0``
(deterministic: one instruction per virtual nanosecond, counted with SysTick), once
with the reference kernels and once with the DSP kernels, in the same run. Prints
instructions per inference and per MAC, flash and RAM, and the DSP/reference ratio,
and checks the DSP build's outputs on 20 random inputs against the TFLM interpreter.
These are instructions, not cycles: QEMU has no cycle model.
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


def _dscnn(out: Path) -> Path:
    """DS-CNN (Zhang et al., "Hello Edge"): 10x4 stride-2 conv, four depthwise-separable
    blocks of 64 channels, average pool, dense; 49x10 MFCC input, batch 1, full int8."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((49, 10, 1), batch_size=1)
    x = keras.layers.Conv2D(64, (10, 4), strides=2, padding="same", activation="relu")(inp)
    for _ in range(4):
        x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(64, 1, activation="relu")(x)
    x = keras.layers.AveragePooling2D((25, 5))(x)
    model = keras.Model(inp, keras.layers.Dense(12)(keras.layers.Flatten()(x)))
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, 49, 10, 1)).astype(np.float32)] for _ in range(32)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    out.mkdir(parents=True, exist_ok=True)
    path = out / "dscnn.tflite"
    path.write_bytes(converter.convert())
    return path


def _check_bit_exact(model: Path, target: str) -> str:
    import tempfile

    import numpy as np

    from tinyfleet.firmware.codegen import generate_from_file
    from tinyfleet.firmware.golden import tflm_outputs
    from tinyfleet.firmware.jobs import inference_job, run_job
    from tinyfleet.firmware.toolchain import cmake_build

    row = TARGETS[target]
    twin = TARGETS[row.measured_on] if row.measured_on else row  # a board: its QEMU twin
    machine = twin.qemu_machine
    assert machine is not None
    with tempfile.TemporaryDirectory() as tmp:
        gen = generate_from_file(model, Path(tmp) / "model")
        build = cmake_build(twin.name, Path(tmp) / "b", Path(tmp) / "model")
        assert build.job_runner is not None
        rng = np.random.default_rng(1)
        inputs = rng.integers(-128, 128, (20, gen.input_size), dtype=np.int8)
        raw, _ = run_job(build.job_runner, inference_job(inputs), qemu=True, machine=machine)
    ours = np.frombuffer(raw, np.int8).reshape(20, -1)
    diff = int(np.sum(ours != tflm_outputs(model.read_bytes(), inputs)))
    return "bit-exact" if diff == 0 else f"{diff} OUTPUTS DIFFER"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", help="int8 .tflite (repeatable)")
    parser.add_argument("--target", action="append", help="QEMU target (repeatable)")
    parser.add_argument("--dscnn", action="store_true", help="add a DS-CNN backbone")
    args = parser.parse_args()
    models = args.model or [_digits_backbone()]
    if args.dscnn:
        import tempfile

        models.append(_dscnn(Path(tempfile.mkdtemp(prefix="bench_dscnn_"))))
    targets = args.target or ["qemu-mps2-an386"]
    print(
        f"{'model':<28} {'target':<16} {'MACs':>8} {'ref insns':>10} {'ref/MAC':>8} "
        f"{'dsp insns':>10} {'dsp/MAC':>8} {'dsp/ref':>8} {'flash ref/dsp':>14} {'arena':>6}  "
        "outputs"
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
            print(f"{line}  {_check_bit_exact(model, target)}", flush=True)


def _output_size(model: Path) -> int:
    from tinyfleet.firmware.codegen import generate_model_file

    return generate_model_file(model).output_size


if __name__ == "__main__":
    main()
