"""``tinyfleet simulate USE_CASE --checkpoint DIR [--resume]``: a simulation that survives
being killed.

``DIR/simulate.json`` holds the run's settings (a resumed run must have the same ones).
Each (seed, strategy) trains with the server's atomic checkpoints
(:mod:`tinyfleet.server.checkpoint`: write, fsync, rename, fsync the folder) in
``DIR/seed-S/STRATEGY/checkpoint.json``, every ``every`` rounds and after the last; its
``extra`` keeps the learning-curve evaluations so far and the last round's accepted
replies. A finished strategy's report row is written to ``DIR/seed-S/STRATEGY/row.json``
and reused as is. Device choice and every device's data derive from ``(seed, device,
round)``, so a run killed (even with SIGKILL) and resumed ends with the same
``final_params_sha256`` and the same curves as an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tinyfleet.errors import InputFileError, UsageError
from tinyfleet.server.checkpoint import FILENAME, write_atomic

MANIFEST = "simulate.json"
FORMAT = "tinyfleet-simulate-checkpoint/1"
ROW = "row.json"
#: Settings that do not change the numbers (an MQTT broker's address) are not compared.
_NOT_COMPARED = ("broker",)


def fingerprint(settings: Any) -> dict[str, Any]:
    """The JSON form of the settings a resumed simulation must share."""
    doc = json.loads(json.dumps(asdict(settings), sort_keys=True, default=list))
    return {k: v for k, v in doc.items() if k not in _NOT_COMPARED}


@dataclass(frozen=True)
class SimulateCheckpoint:
    """Where and how often a simulation checkpoints, and whether it resumes."""

    directory: Path
    every: int = 50
    resume: bool = False

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise UsageError(f"--checkpoint-every must be >= 1, got {self.every}")

    def begin(self, settings: Any) -> None:
        """Check (``resume``) or write the manifest; refuse to mix two runs in one DIR."""
        path = self.directory / MANIFEST
        wanted = fingerprint(settings)
        if not path.exists():
            if self.resume:
                raise UsageError(f"--resume: no simulate checkpoint in {self.directory}")
            self.directory.mkdir(parents=True, exist_ok=True)
            doc = {"format": FORMAT, "settings": wanted}
            write_atomic(path, json.dumps(doc, sort_keys=True).encode())
            return
        if not self.resume:
            raise UsageError(
                f"{self.directory} already holds a simulate checkpoint: pass --resume to "
                "continue it, or another directory"
            )
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            saved = dict(doc["settings"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputFileError(f"{path}: not a usable checkpoint ({error})") from None
        if saved != wanted:
            changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
            raise UsageError(f"cannot resume: the run's settings differ ({', '.join(changed)})")

    def unit(self, seed: int, strategy: str) -> Path:
        """The folder of one (seed, strategy) run."""
        return self.directory / f"seed-{int(seed)}" / strategy

    def has_checkpoint(self, seed: int, strategy: str) -> bool:
        return (self.unit(seed, strategy) / FILENAME).exists()

    def finished_row(self, seed: int, strategy: str) -> dict[str, Any] | None:
        """The report row of a (seed, strategy) that finished before, else None."""
        path = self.unit(seed, strategy) / ROW
        if not self.resume or not path.exists():
            return None
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputFileError(f"{path}: not a usable row ({error})") from None
        return dict(row)

    def save_row(self, seed: int, strategy: str, row: dict[str, Any]) -> None:
        unit = self.unit(seed, strategy)
        unit.mkdir(parents=True, exist_ok=True)
        write_atomic(unit / ROW, json.dumps(row, sort_keys=True).encode())


def resumable_evaluate(
    evaluate: Callable[[int, Any], Any],
    offset: int,
    evaluations: dict[str, dict[str, float]],
) -> Callable[[int, Any], Any]:
    """Flower's ``evaluate_fn`` for a run that continues after round ``offset``.

    Flower numbers the resumed rounds from 1 (and calls round 0 first); the wrapper
    passes the run's own round numbers on, evaluates round ``offset`` only if the killed
    run did not (its checkpoint is written before that round's evaluation), and records
    every evaluation in ``evaluations`` (round as a string key: it is saved as JSON).
    """

    def wrapped(flower_round: int, arrays: Any) -> Any:
        server_round = int(flower_round) + offset
        if flower_round == 0 and offset and str(server_round) in evaluations:
            return None
        metrics = evaluate(server_round, arrays)
        if metrics is not None:
            evaluations[str(server_round)] = {k: float(v) for k, v in dict(metrics).items()}
        return metrics

    return wrapped
