"""Read UCI "Occupancy Detection" files (Candanedo & Feldheim 2016) as presence rooms.

Format: comma-separated text (``*.txt`` or ``*.csv``) with the header ``date,
Temperature, Humidity, Light, CO2, HumidityRatio, Occupancy`` (quoted or not, any order,
names matched case-insensitively); the UCI files also start every data row with a row
number the header does not name, which is skipped. ``date`` is ``YYYY-MM-DD HH:MM[:SS]``;
the five sensor columns are numbers; ``Occupancy`` is 0 or 1.

Devices: the UCI files record ONE room over three periods, so a device is one calendar
day of one file (a "room-day", at least :data:`MIN_READINGS` readings). The days are
ordered by time and the last third (at least one) are held out: the fleet trains on the
past and is evaluated on days it never saw, as a deployment would be.

Any problem (no files, a missing or misnamed column, a non-numeric value, a bad date or
label) raises :class:`~tinyfleet.errors.InputFileError` with one line naming the file
and line, before anything is written.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from tinyfleet.errors import InputFileError
from tinyfleet.simulations.building import COLUMNS, Trace

REQUIRED = ("date", *COLUMNS, "Occupancy")
MIN_READINGS = 30
PATTERNS = ("*.txt", "*.csv")
EPOCH = datetime(1970, 1, 1)


def _header(path: Path, row: list[str]) -> dict[str, int]:
    names = [cell.strip().strip('"').strip() for cell in row]
    lower = {name.lower(): i for i, name in enumerate(names)}
    missing = [name for name in REQUIRED if name.lower() not in lower]
    if missing:
        raise InputFileError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED)} (UCI Occupancy Detection), got {', '.join(names) or 'nothing'}"
        )
    return {name: lower[name.lower()] for name in REQUIRED}


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputFileError(f"{path}: line {line}: column {column}: not a number: {text!r}")
    return value


def read_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One file's ``(timestamps in minutes since the epoch, readings (n, 5), labels)``."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path}: cannot read: {error}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputFileError(f"{path}: empty file; expected a header {', '.join(REQUIRED)}")
    columns = _header(path, rows[0])
    width = len(rows[0])
    stamps, readings, labels = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) == width + 1:  # UCI: an unnamed row number first
            row = row[1:]
        if len(row) != width:
            raise InputFileError(f"{path}: line {line}: {len(row)} fields, the header has {width}")
        text = row[columns["date"]].strip()
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise InputFileError(
                f"{path}: line {line}: column date: not a date (YYYY-MM-DD HH:MM:SS): {text!r}"
            ) from None
        values = [_number(path, line, c, row[columns[c]].strip()) for c in COLUMNS]
        label = _number(path, line, "Occupancy", row[columns["Occupancy"]].strip())
        if label not in (0.0, 1.0):
            raise InputFileError(f"{path}: line {line}: column Occupancy: must be 0 or 1")
        stamps.append((stamp.replace(tzinfo=None) - EPOCH).total_seconds() / 60.0)
        readings.append(values)
        labels.append(int(label))
    if not labels:
        raise InputFileError(f"{path}: no data rows after the header")
    return np.array(stamps), np.array(readings, dtype=np.float64), np.array(labels, np.int64)


def room_days(path: Path) -> list[Trace]:
    """A file cut into calendar days (each in time order), as traces."""
    stamps, readings, labels = read_file(path)
    order = np.argsort(stamps, kind="stable")
    stamps, readings, labels = stamps[order], readings[order], labels[order]
    days = np.floor(stamps / (24 * 60)).astype(np.int64)
    traces = []
    for day in np.unique(days):
        rows = days == day
        if rows.sum() < MIN_READINGS:
            continue
        minutes = np.round(stamps[rows] - stamps[rows][0]).astype(np.int64)
        when = (EPOCH + timedelta(days=int(day))).date().isoformat()
        traces.append(Trace(minutes, readings[rows], labels[rows], f"{path.name}:{when}"))
    return traces


def load_rooms(data_dir: Path) -> tuple[list[Trace], list[Trace]]:
    """``(train, heldout)`` room-days of every ``*.txt``/``*.csv`` file in ``data_dir``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputFileError(f"{data_dir}: not a folder of UCI Occupancy Detection files")
    files = sorted({p for pattern in PATTERNS for p in data_dir.glob(pattern) if p.is_file()})
    if not files:
        raise InputFileError(
            f"{data_dir}: no *.txt or *.csv files (UCI Occupancy Detection: datatraining.txt ...)"
        )
    days = [trace for path in files for trace in room_days(path)]
    if len(days) < 2:
        raise InputFileError(
            f"{data_dir}: need at least 2 days with >= {MIN_READINGS} readings, got {len(days)}"
        )
    days.sort(key=lambda trace: (trace.name.rsplit(":", 1)[-1], trace.name))
    held = max(1, len(days) // 3)
    return days[:-held], days[-held:]


def write_file(trace: Trace, path: Path, start: datetime = datetime(2015, 2, 2)) -> Path:
    """Write a trace in the UCI layout (quoted header, unnamed row numbers first), e.g.
    the simulated building for comparison with real files."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        out.writerow(REQUIRED)
        for i, (minute, values, label) in enumerate(
            zip(trace.minutes, trace.readings, trace.occupied, strict=True), start=1
        ):
            stamp = (start + timedelta(minutes=int(minute))).strftime("%Y-%m-%d %H:%M:%S")
            out.writerow([str(i), stamp, *(float(v) for v in values), int(label)])
    return path
