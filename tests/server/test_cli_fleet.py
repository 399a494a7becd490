"""Separate processes: `tinyfleet device run` + `tinyfleet server run` through Mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.device.head import HeadSpec
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.run import run_in_process
from tinyfleet.server.run_setup import initial_head
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = pytest.mark.mqtt

CLI = [sys.executable, "-m", "tinyfleet"]


def _stream(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def test_device_and_server_processes(broker: ManagedBroker, tmp_path: Path) -> None:
    url = f"mqtt://{broker.host}:{broker.port}"
    devices, rounds, seed = 3, 6, 5
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    fleet = subprocess.Popen(
        [
            *CLI,
            "device",
            "run",
            "--broker",
            url,
            "--device-id",
            "sim",
            "--count",
            str(devices),
            "--fleet",
            "cli",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        out = tmp_path / "run.json"
        server = subprocess.run(
            [
                *CLI,
                "server",
                "run",
                "--broker",
                url,
                "--fleet",
                "cli",
                "--devices",
                str(devices),
                "--rounds",
                str(rounds),
                "--seed",
                str(seed),
                "--k",
                "5",
                "--output",
                str(out),
                "--connect-timeout",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert server.returncode == 0, server.stdout + server.stderr
    finally:
        fleet.send_signal(signal.SIGTERM)
        log = fleet.communicate(timeout=30)[0].decode()
    assert fleet.returncode == 0, log
    assert f"{rounds} round(s) answered" in log
    summary = json.loads(out.read_text())
    assert summary["accepted"] == rounds and summary["gateway"]["duplicates"] == 0
    spec = HeadSpec((1, 40, 40, 1), "tanh", "mse")
    initial = initial_head(spec, seed)
    strategy = TinyReptile(
        RoundPlan("online", inner_lr=0.02, k=5), num_devices=devices, seed=seed, num_rounds=rounds
    )
    expected, _ = run_in_process(strategy, make_client_app(spec, _stream), devices, initial, rounds)
    got = np.array(summary["final_params"], dtype=np.float32)
    assert got.tobytes() == expected.tobytes()


def test_missing_mosquitto_gives_one_line_hint(tmp_path: Path) -> None:
    env = dict(os.environ, TINYFLEET_MOSQUITTO=str(tmp_path / "no-mosquitto"))
    result = subprocess.run([*CLI, "broker"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install mosquitto" in lines[0]
    assert "--broker" in lines[0]


def test_broker_command_runs_in_foreground_and_stops_cleanly() -> None:
    import re

    import paho.mqtt.client as mqtt

    proc = subprocess.Popen(
        [*CLI, "broker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"mqtt://([\d.]+):(\d+) \(pid (\d+)\)", line)
        assert match, line
        host, port, pid = match.group(1), int(match.group(2)), int(match.group(3))
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        assert client.connect(host, port) == 0
        client.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
