"""Device-learner throughput: samples/s through backbone + head SGD step, vs bare TFLM.

Run:  .venv/bin/python benchmarks/bench_device_learner.py [--model DIR] [--samples N]

Measured in the same run, on the same digits images:
  1. bare TFLM: set_input + invoke + get_output on pre-quantised int8 samples (baseline);
  2. OnlineLearner.learn with the real Int8Backbone (quantise, TFLM, dequantise, SGD);
  3. OnlineLearner.learn with the CachedEmbedder (what the simulator uses);
  4. the head SGD step alone.
Prints samples/s and each one's ratio to the bare TFLM baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tinyfleet.device.backbone import Int8Backbone, quantize
from tinyfleet.device.embedding_cache import CachedEmbedder
from tinyfleet.device.head import MLPHead
from tinyfleet.device.learner import OnlineLearner
from tinyfleet.simulations.usecases import digits


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="exported digits model dir")
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()

    directory = args.model or digits.model_dir()
    digits.load_backbone(directory)  # exports once if missing
    backbone = Int8Backbone.from_file(directory / "backbone.tflite")
    cached = CachedEmbedder(backbone, np.asarray(digits.all_images()))
    task = digits.sample_digits_task(np.random.default_rng(0), "train")
    x, y = task.sample(args.samples, np.random.default_rng(1))
    q = quantize(x, backbone.input_quant)
    interpreter = backbone._interpreter  # the same TFLM instance the backbone uses

    # The machine is shared and noisy: measure in interleaved blocks (bare, then each
    # learner, on the same block of samples) and report the median of per-block rates.
    learners = {
        name: OnlineLearner(MLPHead(digits.DIGITS_HEAD, seed=0), embedder, lr=0.003)
        for name, embedder in (("backbone+sgd (TFLM)", backbone), ("backbone+sgd (cached)", cached))
    }
    rates: dict[str, list[float]] = {"bare": [], **{name: [] for name in learners}}
    block = 100
    for lo in range(0, len(q), block):
        start = time.perf_counter()
        for sample in q[lo : lo + block]:
            interpreter.set_input(sample[None], 0)
            interpreter.invoke()
            interpreter.get_output(0)
        rates["bare"].append(_rate(len(q[lo : lo + block]), time.perf_counter() - start))
        for name, learner in learners.items():
            start = time.perf_counter()
            for sample, label in zip(x[lo : lo + block], y[lo : lo + block], strict=True):
                learner.learn(sample, int(label))
            rates[name].append(_rate(len(x[lo : lo + block]), time.perf_counter() - start))
    bare = float(np.median(rates["bare"]))
    results = {name: float(np.median(rates[name])) for name in learners}

    embeddings = backbone.embed(x[:1000])
    head = MLPHead(digits.DIGITS_HEAD, seed=0)
    start = time.perf_counter()
    for e, label in zip(embeddings, y[:1000], strict=True):
        head.sgd_step(e, int(label), 0.003)
    results["head sgd step alone"] = _rate(len(embeddings), time.perf_counter() - start)

    print(f"model: {directory} ({backbone.macs} MACs, arena {backbone.arena_bytes} B)")
    print(f"{'bare TFLM invoke (baseline)':<28} {bare:>10.0f} samples/s  ratio 1.00")
    for name, rate in results.items():
        print(f"{name:<28} {rate:>10.0f} samples/s  ratio {rate / bare:.2f}")


if __name__ == "__main__":
    main()
