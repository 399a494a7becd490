"""All hot-path benchmarks in one run, printed as one table (issue 16).

    .venv/bin/python benchmarks/run_all.py [--quick]

Runs each benchmark script in its own process (each measures its baseline in the same
process, so the ratios hold on a noisy shared machine) and collects:

* device learner, digits: backbone + head SGD vs bare TFLM invoke (bench_device_learner);
* Flower in-process Grid, sine: device-rounds/s vs a bare numpy loop (bench_simulation);
* Flower's Simulation runtime at 1,000 and 10,000 nodes vs the in-process Grid with as
  many nodes (bench_simulation);
* TinyReptile over MQTT vs the same work in process, and a fleet-wide round's messages/s,
  1,000 devices (bench_mqtt_load).

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

    rounds, engine, nodes = ("300", "3", "100") if q else ("2000", "6", "1000,10000")
    out = _run(
        "bench_simulation.py",
        *("--rounds", rounds, "--engine-rounds", engine, "--engine-nodes", nodes),
    )
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
    for match in re.finditer(
        r"Simulation runtime (\d+) nodes\s+([\d.]+) device-rounds/s\s+in-process Grid \d+ "
        r"nodes ([\d.]+)\s+ratio ([\d.]+)\s+\(start-up \+ round 1 ([\d.]+) s, (\d+) rounds "
        r"([\d.]+) s wall, peak RSS (\d+) MiB; same parameters as in process: (\w+)\)",
        out,
    ):
        n, sim, grid, ratio, startup, count, wall, rss, same = match.groups()
        rows.append(
            (
                f"Flower Simulation runtime, {int(n):,} nodes",
                f"in-process Grid {grid} device-rounds/s",
                f"{sim} device-rounds/s after round 1 (start-up + round 1 {startup} s; "
                f"{count} rounds {wall} s wall; peak RSS {rss} MiB; same parameters: {same})",
                f"{1 / max(float(ratio), 1e-9):.0f}x slower",
            )
        )
    if "Simulation runtime" not in out:
        rows.append(("Flower Simulation runtime", "-", out.strip()[-200:] or "?", "-"))

    small = ["--devices", "50", "--rounds", "100", "--fanout-rounds", "1"] if q else []
    out = _run("bench_mqtt_load.py", *small)
    inproc = _find(r"in process: \d+ rounds in [\d.]+ s = ([\d.]+)", out)
    mqtt = _find(r"over MQTT : \d+ rounds in [\d.]+ s = ([\d.]+)", out)
    slower = _find(r"MQTT / in-process \(same work\): ([\d.]+x \(blocks[^)]*\))", out)
    devices = _find(r"devices (\d+) in", out)
    rows.append(
        (
            "TinyReptile over MQTT, " + devices + " devices",
            "same work in process " + inproc + " rounds/s",
            mqtt + " rounds/s, same parameters: " + _find(r"bit-identical: (\w+)", out),
            slower + " the in-process time",
        )
    )
    cpu = re.search(
        r"CPU per TinyReptile round: over MQTT ([\d.]+) ms .*?in process ([\d.]+) ms: "
        r"CPU ratio ([\d.]+)x",
        out,
    )
    if cpu:
        rows.append(
            (
                "TinyReptile over MQTT, CPU time",
                f"in process {cpu[2]} ms CPU per round",
                f"{cpu[1]} ms CPU per round (gateway + broker + device)",
                f"{cpu[3]}x the in-process CPU",
            )
        )
    cpu = re.search(
        r"CPU per answered task: devices ([\d.]+) ms, broker ([\d.]+) ms, gateway ([\d.]+) ms; "
        r"bound on (\d+) CPUs: (\d+) messages/s",
        out,
    )
    if cpu:
        rows.append(
            (
                "fleet-wide round: CPU bound",
                f"CPU per task: devices {cpu[1]} ms, broker {cpu[2]} ms, gateway {cpu[3]} ms",
                f"at most {cpu[5]} messages/s on {cpu[4]} CPUs",
                "-",
            )
        )
    for mode in ("one thread", "threads"):
        fan = [int(v) for v in re.findall(r"\(" + mode + r"\): .*?= (\d+) messages/s", out)]
        rows.append(
            (
                f"fleet-wide round, {devices} devices over MQTT ({mode})",
                "-",
                (f"{min(fan)}-{max(fan)} messages/s" if fan else "?"),
                "-",
            )
        )

    print("| path | baseline in the same run | tinyfleet | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
