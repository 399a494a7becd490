"""Child processes that tinyfleet starts (SuperLink, SuperNodes, devices) and always stops.

Flower's ``flower-superlink`` and ``flower-supernode`` spawn their own children
(``flower-superexec``, which spawns ``flwr-serverapp`` / ``flwr-clientapp``); killing
the parent alone can leave those behind for a while. :class:`ProcessGroup` starts each
command in its own session, logs it to a file, and on :meth:`ProcessGroup.stop` sends
SIGTERM to every process it started *and their descendants* (found through ``/proc``),
waits, then SIGKILLs whatever is left. It only ever signals processes it started or
their descendants, by pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tinyfleet.errors import TinyfleetError


class ProcessError(TinyfleetError):
    """A managed process did not start or died."""


def venv_bin() -> str:
    """The folder of this interpreter's scripts (flower-superlink, flwr, ...)."""
    return str(Path(sys.executable).parent)


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Flower's tools: this venv's bin/ first on PATH
    (``flower-superlink`` spawns ``flower-superexec`` by name)."""
    env = dict(os.environ)
    env["PATH"] = venv_bin() + os.pathsep + env.get("PATH", "")
    env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def find_tool(name: str) -> str:
    found = shutil.which(name, path=venv_bin()) or shutil.which(name)
    if not found:
        raise ProcessError(f"{name} not found (install tinyfleet with scripts/setup.sh)")
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces; split after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(children.get(child, []))
    return out


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text()
        if state[state.rfind(")") + 2 :].startswith("Z"):
            return False
    return True


@dataclass
class Managed:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").strip().splitlines()
            return " | ".join(line.strip() for line in text[-lines:])
        return ""


class ProcessGroup:
    """Processes started by :meth:`start`, all stopped by :meth:`stop` (or on exit)."""

    def __init__(self, log_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env) if env is not None else tool_env()
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.members: list[Managed] = []
        self._known: set[int] = set()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Managed:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            try:
                process = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else self.env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as error:
                raise ProcessError(f"cannot start {name}: {error}") from None
        member = Managed(name, process, log_path)
        self.members.append(member)
        return member

    def run_once(self, name: str, argv: Sequence[str], timeout: float) -> tuple[int | None, str]:
        """Run a short command to its end (killed after ``timeout``); its exit code
        (None: timed out) and the tail of its log. It is not watched afterwards."""
        member = self.start(name, argv)
        try:
            code: int | None = member.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            member.process.kill()
            member.process.wait(5)
        self.members.remove(member)
        return code, member.log_tail(2)

    def remember_descendants(self) -> None:
        """Note the current descendants (a child that dies first orphans its own)."""
        for member in self.members:
            if member.process.poll() is None:
                self._known.update(descendants(member.process.pid))

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each member with its descendants now (MB, from /proc)."""
        out = {}
        for member in self.members:
            if member.process.poll() is None:
                pids = [member.process.pid, *descendants(member.process.pid)]
                out[member.name] = round(sum(_rss_kb(p) for p in pids) / 1024, 1)
        return out

    def check_alive(self) -> None:
        for member in self.members:
            code = member.process.poll()
            if code is not None:
                raise ProcessError(
                    f"{member.name} exited with code {code}: {member.log_tail(3)} "
                    f"(log: {member.log_path})"
                )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM everything started here and its descendants; SIGKILL after ``timeout``."""
        self.remember_descendants()
        pids = [m.process.pid for m in reversed(self.members)] + sorted(self._known)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for member in self.members:
            with contextlib.suppress(subprocess.TimeoutExpired):
                member.process.wait(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for member in self.members:
            with contextlib.suppress(subprocess.TimeoutExpired):
                member.process.wait(5)
        self.members.clear()
        self._known.clear()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
