"""Crash and resume (issue 9: a killed server started again from round 1 with nothing
written): atomic checkpoints every N rounds; a resumed run ends bit-identical to an
uninterrupted one, with each round applied (and recorded) once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server import checkpoint
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import quiet_flower, run_in_process
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.faults
quiet_flower()

SEED, DEVICES, ROUNDS = 21, 6, 40
SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(SEED)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)
SETTINGS = {"seed": SEED, "rounds": ROUNDS}


class Crash(BaseException):
    """Stands in for SIGKILL inside the process: nothing after it runs."""


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def strategy() -> TinyReptile:
    return TinyReptile(PLAN, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)


def call():
    return client_app_call(make_client_app(SPEC, stream_for_device))


def test_resume_in_process_equals_uninterrupted(tmp_path: Path) -> None:
    reference = strategy()
    expected, _ = run_in_process(reference, call(), DEVICES, INITIAL, ROUNDS)

    first = strategy()
    start, left = checkpoint.prepare(
        first, tmp_path, every=7, resume=False, settings=SETTINGS, initial=INITIAL
    )
    assert left == ROUNDS and start is INITIAL
    saving = first.on_round_end
    assert saving is not None

    def crash_in_round_17(server_round: int, theta: np.ndarray) -> None:
        saving(server_round, theta)
        if server_round == 17:
            raise Crash

    first.on_round_end = crash_in_round_17
    with pytest.raises(Crash):
        run_in_process(first, call(), DEVICES, INITIAL, ROUNDS)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["round"] == 14
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind

    with pytest.raises(UsageError, match="already holds a checkpoint"):
        checkpoint.prepare(strategy(), tmp_path, every=7, resume=False, settings=SETTINGS,
                           initial=INITIAL)  # fmt: skip
    with pytest.raises(UsageError, match="settings differ"):
        checkpoint.prepare(strategy(), tmp_path, every=7, resume=True,
                           settings={**SETTINGS, "seed": 1}, initial=INITIAL)  # fmt: skip
    resumed = strategy()
    start, left = checkpoint.prepare(
        resumed, tmp_path, every=7, resume=True, settings=SETTINGS, initial=INITIAL
    )
    assert left == ROUNDS - 14
    final, _ = run_in_process(resumed, call(), DEVICES, start, left)
    assert final.tobytes() == expected.tobytes()
    assert resumed.counters.rounds == reference.counters.rounds == ROUNDS
    assert resumed.counters.accepted_replies == ROUNDS  # nothing applied twice
    assert resumed.counters.grad_evals_total == reference.counters.grad_evals_total
    assert json.loads((tmp_path / "checkpoint.json").read_text())["round"] == ROUNDS


CLI = [sys.executable, "-m", "tinyfleet"]


@pytest.mark.mqtt
def test_server_sigkilled_and_resumed_ends_with_the_same_hash(
    broker: ManagedBroker, tmp_path: Path
) -> None:
    url = f"mqtt://{broker.host}:{broker.port}"
    fleet, rounds = "resume", 600
    devices = subprocess.Popen(
        [*CLI, "device", "run", "--broker", url, "--fleet", fleet, "--device-id", "rs",
         "--count", "3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = [*CLI, "server", "run", "--broker", url, "--fleet", fleet, "--devices", "3",
              "--device-prefix", "rs", "--rounds", str(rounds), "--k", "5", "--seed", "4",
              "--connect-timeout", "60"]  # fmt: skip
    ckpt = tmp_path / "ckpt"
    try:
        reference = subprocess.run(
            [*server, "--output", str(tmp_path / "ref.json")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert reference.returncode == 0, reference.stderr
        victim = subprocess.Popen(
            [*server, "--checkpoint", str(ckpt), "--checkpoint-every", "20"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        saved = 0
        while time.monotonic() < deadline and victim.poll() is None:
            with_file = ckpt / "checkpoint.json"
            if with_file.exists():
                saved = json.loads(with_file.read_text())["round"]
                if saved >= 60:
                    break
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        saved = json.loads((ckpt / "checkpoint.json").read_text())["round"]
        if saved >= rounds:
            pytest.skip("the run finished before it could be killed")
        resumed = subprocess.run(
            [*server, "--checkpoint", str(ckpt), "--resume", "--output", str(tmp_path / "r.json")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
    finally:
        devices.send_signal(signal.SIGTERM)
        devices.wait(timeout=30)
    ref = json.loads((tmp_path / "ref.json").read_text())
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["resumed_from_round"] == saved > 0
    assert got["final_params_sha256"] == ref["final_params_sha256"]
    assert got["accepted"] == ref["accepted"] == rounds
