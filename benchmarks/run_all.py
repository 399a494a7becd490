"""All hot-path benchmarks in one run, printed as one table (issue 16).

    .venv/bin/python benchmarks/run_all.py [--quick]

Runs each benchmark script in its own process (each measures its baseline in the same
process, so the ratios hold on a noisy shared machine) and collects:

* device learner, digits: backbone + head SGD vs bare TFLM invoke (bench_device_learner);
* Flower in-process Grid, sine: device-rounds/s vs a bare numpy loop (bench_simulation);
* Flower Simulation Engine vs the in-process Grid (bench_simulation);
* TinyReptile over MQTT vs the same work in process, and a fleet-wide round's messages/s
  (bench_mqtt_load).

Numbers are printed, never asserted. ``--quick`` shrinks every run (for a smoke test).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return "FAILED: " + " | ".join(tail)
    return result.stdout


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return match.group(1) if match else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs (smoke test)")
    args = parser.parse_args()
    q = args.quick
    rows: list[tuple[str, str, str, str]] = []

    out = _run("bench_device_learner.py", "--samples", "500" if q else "3000")
    bare = _find(r"bare TFLM invoke \(baseline\)\s+(\d+)", out)
    learner = _find(r"backbone\+sgd \(TFLM\)\s+(\d+)", out)
    ratio = _find(r"backbone\+sgd \(TFLM\)\s+\d+ samples/s\s+ratio ([\d.]+)", out)
    rows.append(
        (
            "device learner, digits",
            "bare TFLM invoke " + bare + " samples/s",
            "backbone + SGD " + learner + " samples/s",
            ratio + "x",
        )
    )

    rounds, engine = ("300", "5") if q else ("2000", "20")
    out = _run("bench_simulation.py", "--rounds", rounds, "--engine-rounds", engine)
    base = _find(r"bare numpy loop\s+([\d.]+)", out)
    inproc = _find(r"in-process Grid\s+([\d.]+)", out)
    ratio = _find(r"in-process Grid\s+[\d.]+ device-rounds/s\s+ratio ([\d.]+)", out)
    rows.append(
        (
            "Flower in-process Grid, sine",
            "bare numpy loop " + base + " device-rounds/s",
            inproc + " device-rounds/s",
            ratio + "x",
        )
    )
    sim = _find(r"Simulation Engine\s+([\d.]+)", out)
    ratio = _find(r"Simulation Engine\s+[\d.]+ device-rounds/s\s+ratio ([\d.]+)", out)
    rows.append(
        (
            "Flower Simulation Engine",
            "in-process Grid " + inproc + " device-rounds/s",
            sim + " device-rounds/s",
            ratio + "x",
        )
    )

    small = ["--devices", "50", "--rounds", "100", "--fanout-rounds", "1"] if q else []
    out = _run("bench_mqtt_load.py", *small)
    inproc = _find(r"in process: \d+ rounds in [\d.]+ s = ([\d.]+)", out)
    mqtt = _find(r"over MQTT : \d+ rounds in [\d.]+ s = ([\d.]+)", out)
    slower = _find(r"MQTT / in-process \(same work\): ([\d.]+)x", out)
    rows.append(
        (
            "TinyReptile over MQTT",
            "same work in process " + inproc + " rounds/s",
            mqtt + " rounds/s",
            slower + "x the in-process time",
        )
    )
    fan = [int(n) for n in re.findall(r"= (\d+) messages/s", out)]
    best = str(max(fan)) if fan else "?"
    rows.append(("fleet-wide round over MQTT", "-", best + " messages/s", "-"))

    print("| path | baseline in the same run | tinyfleet | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
