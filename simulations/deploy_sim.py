"""``flwr run`` on Flower's Simulation runtime, with a SuperLink started and stopped here.

The same Flower App as ``tinyfleet deploy local`` (simulations/flower_app.py); the
ClientApp plays the simulated devices on virtual SuperNodes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tinyfleet.server.broker import free_port
from tinyfleet.server.processes import ProcessGroup, find_tool, tool_env
from tinyfleet.simulations.deploy import (
    CONNECTION,
    DeployError,
    _reachable,
    _sigterm_as_interrupt,
    _wait_for_report,
    app_dir,
    flower_home,
    run_config_arg,
)
from tinyfleet.simulations.flower_app import DONE_FILE


def _no_tensorflow(home: Path) -> Path:
    """A folder whose ``tensorflow`` package raises ModuleNotFoundError on import."""
    folder = home / "no-tensorflow"
    package = folder / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        'raise ModuleNotFoundError("tensorflow is hidden from the Flower simulation '
        'processes (tinyfleet.simulations.deploy_sim)", name="tensorflow")\n',
        encoding="utf-8",
    )
    return folder


def simulation_runtime(
    out: Path,
    run_config: dict[str, Any],
    num_supernodes: int = 4,
    timeout: float = 600.0,
    log: Any = None,
    allow_tensorflow: bool = False,
) -> dict[str, Any]:
    """``flwr run`` on Flower's Simulation runtime: a ``flower-superlink --simulation``
    started here on a free port (stopped afterwards), ``num_supernodes`` virtual
    SuperNodes running the simulated-device ClientApp. Returns the report.

    Flower's Ray transport imports TensorFlow when it is installed
    (``flwr/simulation/ray_transport/utils.py``, for its GPU-growth helper); on a busy
    machine that import alone outlasts the 30 s a task token is valid before its first
    heartbeat, and the run never starts. The use cases' devices need no TensorFlow (the
    backbone runs on TFLM), so unless ``allow_tensorflow`` the simulation processes see
    a ``tensorflow`` that is not there.
    """
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    done_path = out / DONE_FILE
    done_path.unlink(missing_ok=True)
    home = out / "flwr-home"
    with (
        _sigterm_as_interrupt(),
        ProcessGroup(out / "logs", tool_env({"FLWR_HOME": str(home)})) as procs,
    ):
        port = free_port()
        link = procs.start(
            "superlink",
            [
                find_tool("flower-superlink"),
                "--insecure",
                "--simulation",
                "--port",
                str(port),
                "--disable-runtime-dependency-installation",
            ],
        )
        deadline = time.monotonic() + 120
        while not _reachable("127.0.0.1", port):
            if link.process.poll() is not None or time.monotonic() > deadline:
                raise DeployError(
                    f"flower-superlink --simulation did not start: {link.log_tail(3)}"
                )
        flower_home(home, f"127.0.0.1:{port}", None)
        say(f"simulation runtime: SuperLink on 127.0.0.1:{port}, {num_supernodes} virtual nodes")
        runner = procs.start(
            "flwr-run",
            [
                find_tool("flwr"),
                "run",
                str(app_dir()),
                CONNECTION,
                "--stream",
                "--federation-config",
                f"num-supernodes={int(num_supernodes)}",
                "--run-config",
                run_config_arg({**run_config, "sites": 0, "out-dir": str(out)}),
            ],
        )
        _wait_for_report(timeout, procs, runner, done_path, out, {})
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report
