"""The Oxigraph SPARQL server as a supervised child process (like the managed Mosquitto).

:class:`ManagedOxigraph` runs ``oxigraph serve --location DIR --bind 127.0.0.1:PORT
--timeout-s N`` (the ``oxigraph`` binary of the PyPI package of that name), waits until it
answers, and restarts it if it dies (a crash must not take the service down for good).
It binds loopback only: the server has no authentication, so tinyfleet's front
(:mod:`tinyfleet.ontology.endpoint`) is what clients talk to.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from tinyfleet.ontology.errors import KnowledgeGraphError
from tinyfleet.processes import stop_process

LOG = logging.getLogger(__name__)
INSTALL_HINT = "the `oxigraph` server binary is missing: `pip install 'oxigraph>=0.5,<0.6'`"


def find_oxigraph() -> str:
    """Path of the ``oxigraph`` binary (on PATH or beside this Python)."""
    found = shutil.which("oxigraph")
    beside = Path(sys.executable).with_name("oxigraph")
    if found:
        return found
    if beside.exists():
        return str(beside)
    raise KnowledgeGraphError(INSTALL_HINT)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux prctl)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ManagedOxigraph:
    """``oxigraph serve`` on a loopback port, restarted when it exits unexpectedly.

    Parameters
    ----------
    location
        Store directory (created if missing); ``None`` = in memory (lost on restart).
    port
        Port to bind on 127.0.0.1 (0 = a free one).
    timeout_s
        Oxigraph's per-query timeout in seconds.
    """

    def __init__(self, location: Path | None, port: int = 0, timeout_s: int = 10) -> None:
        self.location = location
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.timeout_s = timeout_s
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (``/query``, ``/update``, ``/store`` below it)."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _spawn(self) -> None:
        command = [find_oxigraph(), "serve", "--bind", f"{self.host}:{self.port}"]
        command += ["--timeout-s", str(self.timeout_s)]
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        # stderr to a file: a pipe nobody drains could block the server
        with tempfile.TemporaryFile() as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    log.seek(0)
                    error = " ".join(log.read().decode(errors="replace").split())[:300]
                    raise KnowledgeGraphError(f"oxigraph serve exited: {error}")
                if self._answers():
                    return
                time.sleep(0.05)
            self._process.kill()
        raise KnowledgeGraphError(f"oxigraph serve did not answer on {self.url} within 30 s")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/query?query=ASK%7B%7D", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> ManagedOxigraph:
        """Start the server and its supervisor; return self."""
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        return self

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            LOG.warning("oxigraph serve exited (%s); restarting", code)
            while not self._stopping.is_set():
                try:
                    self._spawn()
                    self.restarts += 1  # counted once it answers again
                    break
                except KnowledgeGraphError as error:  # e.g. the port is still in TIME_WAIT
                    LOG.warning("restart failed: %s", error)
                    time.sleep(0.5)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and its supervisor."""
        self._stopping.set()
        stop_process(self._process, timeout)
        if self._supervisor is not None:
            self._supervisor.join(timeout)

    def __enter__(self) -> ManagedOxigraph:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
