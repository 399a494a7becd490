"""Rounds lost to faults in a long MQTT run (issue 9: "kill -9 one device for 3 s in a
3,000-round run" lost 307 rounds; a "graceful broker restart" lost 1 round in one of two
tries).

Run:  .venv/bin/python benchmarks/bench_fault_rounds.py [--rounds 3000] [--devices 10]
      [--scenarios undisturbed,kill,restart,restart] [--reassign N]

Everything is real and separate: a managed Mosquitto (passwords, ACL), the victim device
``sim-0000`` in its own ``tinyfleet device run`` process, the other devices in a second
one, and ``tinyfleet server run`` (TinyReptile, sine head, k=10, checkpoints every 50
rounds, which is how the script knows how far the run is). Once the run is a third
through: ``kill`` SIGKILLs the victim process, waits 3 s and starts it again; ``restart``
restarts Mosquitto gracefully (SIGTERM, start on the same port); ``gone`` SIGKILLs the
victim for good (with ``--reassign`` at least 2: its tasks go to other devices,
server/reassign.py; the final hash then differs from the undisturbed run). Prints per scenario the
rounds lost (rounds - accepted replies: one device per round), the gateway's counters,
the wall time and whether the final parameters equal the undisturbed run's
(``final_params_sha256``).
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tinyfleet.server.broker import GATEWAY_USER, ManagedBroker

CLI = [sys.executable, "-m", "tinyfleet"]


def _secret_file(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    path.write_text(value)
    path.chmod(0o600)
    return path


def scenario(name: str, rounds: int, devices: int, reassign: int, work: Path) -> dict[str, Any]:
    """One run of ``name`` (undisturbed | kill | restart); its summary and fault timing."""
    work.mkdir(parents=True)
    ids = [f"sim-{i:04d}" for i in range(devices)]
    device_pw, gateway_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    users = {GATEWAY_USER: gateway_pw, **{d: device_pw for d in ids}}
    dev_file = _secret_file(work, "device.pw", device_pw)
    gw_file = _secret_file(work, "gateway.pw", gateway_pw)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with ManagedBroker(users=users) as broker:
        url = f"mqtt://{broker.host}:{broker.port}"
        common = ["--broker", url, "--fleet", "bench", "--password-file", str(dev_file)]
        victim_cmd = [*CLI, "device", "run", *common, "--device-id", ids[0]]
        victim = subprocess.Popen(victim_cmd, **quiet)  # type: ignore[call-overload]
        others = subprocess.Popen(
            [*CLI, "device", "run", *common, "--device-id", "sim", "--count",
             str(devices - 1), "--device-index", "1"], **quiet,
        )  # fmt: skip
        ckpt, output = work / "ckpt", work / "out.json"
        server = subprocess.Popen(
            [*CLI, "server", "run", "--broker", url, "--password-file", str(gw_file),
             "--fleet", "bench", "--devices", str(devices), "--rounds", str(rounds),
             "--k", "10", "--seed", "0", "--connect-timeout", "180", "--checkpoint",
             str(ckpt), "--checkpoint-every", "50", "--reassign",
             str(max(reassign, 2) if name == "gone" else reassign),
             "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"),  # noqa: SIM115
        )  # fmt: skip
        fault: dict[str, Any] = {}
        try:
            if name != "undisturbed":
                at = _wait_for_round(ckpt, rounds // 3, server)
                started = time.monotonic()
                if name == "gone":
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                elif name == "kill":
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    time.sleep(3.0)
                    victim = subprocess.Popen(victim_cmd, **quiet)  # type: ignore[call-overload]
                else:
                    broker.restart()
                fault = {"at_round": at, "fault_s": round(time.monotonic() - started, 2)}
            server.wait(timeout=3600)
        finally:
            for proc in (server, victim, others):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    if server.returncode != 0:
        tail = (work / "server.log").read_text()[-600:]
        raise SystemExit(f"{name}: server exited {server.returncode}: {tail}")
    return {**json.loads(output.read_text()), **fault}


def _wait_for_round(ckpt: Path, wanted: int, server: subprocess.Popen[Any]) -> int:
    path = ckpt / "checkpoint.json"
    while server.poll() is None:
        if path.exists():
            try:
                done = int(json.loads(path.read_text())["round"])
            except (ValueError, KeyError):
                done = 0
            if done >= wanted:
                return done
        time.sleep(0.02)
    raise SystemExit("the server ended before the fault could be injected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--scenarios", default="undisturbed,kill,restart,restart")
    parser.add_argument("--reassign", type=int, default=0, help="server run --reassign N")
    args = parser.parse_args()
    reference = None
    with tempfile.TemporaryDirectory(prefix="bench-fault-rounds-") as tmp:
        for number, name in enumerate(args.scenarios.split(",")):
            got = scenario(name, args.rounds, args.devices, args.reassign, Path(tmp) / str(number))
            if name == "undisturbed":
                reference = got["final_params_sha256"]
            gw = got["gateway"]
            same = "n/a" if reference is None else got["final_params_sha256"] == reference
            print(
                f"{name:<11} rounds {got['rounds']}  lost {got['rounds'] - got['accepted']}  "
                f"rejected {got['rejected']}  reassigned {got.get('reassigned', 0)}  "
                f"fault at round {got.get('at_round', '-')} ({got.get('fault_s', '-')} s)  "
                f"drops {gw['drops']} recovered {gw['recovered']} resends {gw['resends']} "
                f"retries {gw['retries']} timeouts {gw['timeouts']} connects {gw['connects']}  "
                f"{got['seconds']:.1f} s  same final hash as undisturbed: {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
