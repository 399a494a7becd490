"""Crash and resume: atomic checkpoints of a federated run.

A checkpoint is one JSON file, ``DIR/checkpoint.json``, written atomically (write a
temporary file in DIR, fsync it, rename it over the old one, fsync DIR) every ``every``
rounds and after the last. It holds everything the run needs to continue: theta (float32
bytes, base64: exact), the last finished round, the strategy's counters and quarantine,
and the run's settings (a resumed run must have the same ones). Device choice and each
device's data derive from ``(seed, round)`` (server/sampling.py, the seeded streams), so
there is no other RNG state to keep: a run killed with SIGKILL and resumed ends with the
same ``final_params_sha256`` as an uninterrupted one.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.errors import InputFileError, UsageError
from tinyfleet.server.strategies import FleetStrategy

FORMAT = "tinyfleet-checkpoint/1"
FILENAME = "checkpoint.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(
    directory: Path, strategy: FleetStrategy, server_round: int, theta: np.ndarray,
    settings: Mapping[str, Any], extra: Mapping[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write the checkpoint of ``strategy`` after ``server_round`` with parameters ``theta``
    (and the caller's JSON-able ``extra`` state, e.g. a learning curve so far)."""
    counters = asdict(strategy.counters)
    counters["rejected_by_device"] = {
        str(k): v for k, v in strategy.counters.rejected_by_device.items()
    }
    doc = {
        "format": FORMAT,
        "round": int(server_round),
        "theta": base64.b64encode(np.asarray(theta, np.float32).tobytes()).decode(),
        "theta_size": int(np.asarray(theta).size),
        "counters": counters,
        "quarantine": strategy.quarantine.state(),
        "settings": dict(settings),
        "extra": dict(extra or {}),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILENAME
    write_atomic(path, json.dumps(doc, sort_keys=True).encode())
    return path


def load(directory: Path) -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or None if there is none."""
    path = directory / FILENAME
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        theta = np.frombuffer(base64.b64decode(doc["theta"]), dtype=np.float32).copy()
        if doc.get("format") != FORMAT or theta.size != int(doc["theta_size"]):
            raise ValueError("unknown format or truncated theta")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputFileError(f"{path}: not a usable checkpoint ({error})") from None
    doc["theta"] = theta
    return dict(doc)


def read_quarantine(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(quarantine state, run settings)`` of the checkpoint in ``directory``."""
    doc = load(directory)
    if doc is None:
        raise UsageError(f"no checkpoint in {directory}")
    return dict(doc["quarantine"]), dict(doc["settings"])


def clear_quarantine(directory: Path, device: int) -> bool:
    """Let ``device`` train again in the checkpointed run (an operator's decision): drop
    it from the saved quarantine and its refusal count, rewriting the file atomically.
    Returns False (nothing written) when it was not quarantined. Do this while the run
    is stopped: a running server overwrites the file at its next checkpoint."""
    path = directory / FILENAME
    if load(directory) is None:
        raise UsageError(f"no checkpoint in {directory}")
    doc = json.loads(path.read_text(encoding="utf-8"))
    quarantine = doc.setdefault("quarantine", {})
    if str(int(device)) not in quarantine.get("quarantined", {}):
        return False
    for key in ("quarantined", "rejections", "reasons"):
        quarantine.get(key, {}).pop(str(int(device)), None)
    write_atomic(path, json.dumps(doc, sort_keys=True).encode())
    return True


def restore(strategy: FleetStrategy, doc: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Put a checkpoint's state into a fresh ``strategy`` (same settings required)."""
    saved = dict(doc["settings"])
    if saved != dict(settings):
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        raise UsageError(f"cannot resume: the run's settings differ ({', '.join(changed)})")
    counters = dict(doc["counters"])
    counters["rejected_by_device"] = {
        int(k): int(v) for k, v in counters.get("rejected_by_device", {}).items()
    }
    for key, value in counters.items():
        setattr(strategy.counters, key, value)
    strategy.quarantine.load_state(doc["quarantine"])
    strategy.round_offset = int(doc["round"])


def checkpoint_hook(
    directory: Path, strategy: FleetStrategy, every: int, settings: Mapping[str, Any],
    on_save: Callable[[int, np.ndarray], None] | None = None,
    extra: Callable[[], Mapping[str, Any]] | None = None,
) -> Callable[[int, np.ndarray], None]:  # fmt: skip
    """An ``on_round_end`` hook that saves every ``every`` rounds and after the last."""
    if int(every) < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {every}")

    def hook(server_round: int, theta: np.ndarray) -> None:
        if server_round % every == 0 or server_round == strategy.num_rounds:
            state = None if extra is None else extra()
            save(directory, strategy, server_round, theta, settings, state)
            if on_save is not None:
                on_save(server_round, theta)

    return hook


def prepare(
    strategy: FleetStrategy, directory: Path, *, every: int, resume: bool,
    settings: Mapping[str, Any], initial: np.ndarray,
    on_save: Callable[[int, np.ndarray], None] | None = None,
    extra: Callable[[], Mapping[str, Any]] | None = None,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """Set ``strategy`` up to checkpoint into ``directory`` (and, with ``resume``, to go on
    from the checkpoint there); return the parameters to start from and the rounds left.
    ``extra()`` is saved with each checkpoint (``load(directory)["extra"]``)."""
    found = load(directory)
    start, done = initial, 0
    if resume:
        if found is None:
            raise UsageError(f"--resume: no checkpoint in {directory}")
        restore(strategy, found, settings)
        start, done = found["theta"], int(found["round"])
    elif found is not None:
        raise UsageError(
            f"{directory} already holds a checkpoint (round {found['round']}): pass --resume "
            "to continue it, or another directory"
        )
    strategy.on_round_end = checkpoint_hook(directory, strategy, every, settings, on_save, extra)
    return start, strategy.num_rounds - done
