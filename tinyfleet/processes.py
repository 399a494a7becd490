"""Helpers for the servers tinyfleet starts and stops itself (Mosquitto, Oxigraph)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Stop ``process`` if it still runs: SIGTERM, then SIGKILL after ``timeout`` seconds
    (a server that ignores SIGTERM must not hang the caller); always reaped."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
