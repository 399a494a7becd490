"""``simulate`` can resume (issue 9, item 4): a simulate run SIGKILLed mid-way (a real
subprocess) and resumed from its atomic checkpoints writes the same report numbers as an
uninterrupted run: same ``final_params_sha256``, curves and few-shot metric per strategy."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyfleet.simulations.resume import resumable_evaluate

pytestmark = pytest.mark.faults

SIMULATE = [
    sys.executable, "-m", "tinyfleet", "simulate", "sine",
    "--strategies", "tinyreptile,fedavg,scratch", "--rounds", "600", "--devices", "20",
    "--heldout-devices", "10", "--eval-points", "4", "--eval-devices", "5", "--no-progress",
]  # fmt: skip


def simulate(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIMULATE, *extra], capture_output=True, text=True, timeout=600)


def test_simulate_sigkilled_and_resumed_reports_the_same_numbers(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    victim = subprocess.Popen(
        [*SIMULATE, "--checkpoint", str(ckpt), "--checkpoint-every", "20",
         "--out", str(tmp_path / "killed")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    second = ckpt / "seed-0" / "fedavg" / "checkpoint.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and victim.poll() is None and not second.exists():
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    if not second.exists() or (ckpt / "seed-0" / "fedavg" / "row.json").exists():
        pytest.skip("the run was not killed during its second strategy")
    killed_at = json.loads(second.read_text())["round"]
    assert 0 < killed_at < 600 // 5  # FedAvg: 5 devices per round -> 120 rounds
    assert (ckpt / "seed-0" / "tinyreptile" / "row.json").exists()
    assert not list(ckpt.rglob(".*tmp"))  # atomic writes: no temporary left behind

    again = simulate("--checkpoint", str(ckpt), "--out", str(tmp_path / "again"))
    assert again.returncode == 2 and "already holds" in again.stderr  # nothing overwritten
    other = simulate("--checkpoint", str(ckpt), "--resume", "--seed", "1")
    assert other.returncode == 2 and "settings differ (seed)" in other.stderr

    resumed = simulate("--checkpoint", str(ckpt), "--resume", "--out", str(tmp_path / "r"))
    assert resumed.returncode == 0, resumed.stderr
    reference = simulate("--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr

    got = json.loads((tmp_path / "r" / "report.json").read_text())["strategies"]
    want = json.loads((tmp_path / "ref" / "report.json").read_text())["strategies"]
    assert set(got) == set(want) == {"tinyreptile", "fedavg", "scratch"}
    for name, row in want.items():
        assert got[name]["final_params_sha256"] == row["final_params_sha256"], name
        assert got[name]["learning_curve"] == row["learning_curve"], name
        assert got[name]["fewshot"] == row["fewshot"], name
        assert got[name]["grad_evals_total"] == row["grad_evals_total"], name


def test_resumed_evaluation_keeps_the_runs_round_numbers() -> None:
    seen: list[int] = []

    def evaluate(server_round: int, arrays: object) -> dict[str, float] | None:
        seen.append(server_round)
        return {"fewshot": float(server_round)} if server_round % 50 == 0 else None

    evaluations = {"0": {"fewshot": 0.0}}
    fresh = resumable_evaluate(evaluate, 0, evaluations)
    fresh(0, None)  # a fresh run evaluates round 0 again (same value)
    # Killed after the checkpoint of round 100, before its evaluation: the resumed run's
    # Flower round 0 is round 100 and is evaluated; 1.. continue as 101..
    resumed = resumable_evaluate(evaluate, 100, evaluations)
    resumed(0, None)
    resumed(50, None)
    assert seen == [0, 100, 150] and sorted(evaluations, key=int) == ["0", "100", "150"]
    # A checkpoint that already holds its round's evaluation: not evaluated twice.
    seen.clear()
    resumable_evaluate(evaluate, 150, evaluations)(0, None)
    assert seen == []
