"""Field-drift scenarios: one deployed device's stream, whose distribution shifts at
marked drift points (``tinyfleet drift``).

Every scenario has four segments of ``length`` samples and three drift points between
them; each device draws its own scenario from its own random stream:

* ``sine``: the device's sine wave walks: at each drift point amplitude and phase take a
  random step (amplitude +- ~1.5 within [0.1, 5], phase +- ~0.8 rad); ``x ~ U(-5, 5)``.
  Scored by the squared error over the current amplitude squared (``nmse``), so that a
  segment with a larger amplitude is not "harder" by construction.
* ``digits``: rotation drift: the device keeps its five labels (held-out classes), but
  at each drift point every image arrives rotated by another quarter turn.
* ``presence``: one simulated room read every 10 minutes (5 days per segment at the
  default length): 1) sensor offset drift (an uncalibrated NDIR CO2 sensor +300 ppm and
  gain x0.8, temperature +1.5 degC, light sensor dimmed to x0.5), 2) a new ventilation regime (air changes x3, or
  /3 where they were high), 3) a season change (winter <-> summer: outdoor temperature,
  humidity and daylight). The physical state carries over each drift point.

A stream gives raw inputs (before the backbone) and targets; the caller embeds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyfleet.errors import UsageError

SEGMENTS = 4
PRESENCE_STEP_MINUTES = 10


@dataclass(frozen=True)
class DriftStream:
    """Raw inputs ``x`` (T, ...), targets ``y``, drift points (sample indices) and what
    each drift is."""

    x: np.ndarray
    y: np.ndarray
    drift_points: tuple[int, ...]
    drift_labels: tuple[str, ...]
    # Regression: each sample's squared error is divided by scale**2 (sine: the current
    # amplitude), so segments with different amplitudes compare.
    scale: np.ndarray | None = None


def sine_stream(rng: np.random.Generator, length: int) -> DriftStream:
    amplitude = float(rng.uniform(0.1, 5.0))
    phase = float(rng.uniform(0.0, np.pi))
    xs, ys, labels, scales = [], [], [], []
    for segment in range(SEGMENTS):
        if segment:
            step_a, step_p = float(rng.normal(0, 1.5)), float(rng.normal(0, 0.8))
            amplitude = float(np.clip(amplitude + step_a, 0.1, 5.0))
            phase += step_p
            labels.append(f"amplitude {amplitude:.2f}, phase {phase:.2f}")
        x = rng.uniform(-5.0, 5.0, size=(length, 1))
        xs.append(x)
        ys.append(amplitude * np.sin(x + phase))
        scales.append(np.full(length, amplitude))
    points = tuple(length * s for s in range(1, SEGMENTS))
    return DriftStream(
        np.concatenate(xs).astype(np.float32),
        np.concatenate(ys).astype(np.float32),
        points,
        tuple(labels),
        np.concatenate(scales),
    )


def digits_stream(rng: np.random.Generator, length: int) -> DriftStream:
    from tinyfleet.simulations.usecases import digits

    task = digits.sample_digits_task(rng, "heldout")
    ids, labels = [], []
    for segment in range(SEGMENTS):
        # Same digits, the images turned by ``segment`` more quarter turns.
        turned = tuple(
            (c // digits.ROTATIONS) * digits.ROTATIONS + (c % digits.ROTATIONS + segment) % 4
            for c in task.classes
        )
        seg_ids, seg_y = digits.DigitsTask(turned).sample_ids(length, rng)
        ids.append(seg_ids)
        labels.append(seg_y)
    points = tuple(length * s for s in range(1, SEGMENTS))
    return DriftStream(
        digits.all_images()[np.concatenate(ids)],
        np.concatenate(labels),
        points,
        ("rotated +90 deg", "rotated +180 deg", "rotated +270 deg"),
    )


def presence_stream(rng: np.random.Generator, length: int) -> DriftStream:
    from tinyfleet.simulations.building import MINUTES_PER_DAY, sample_room, simulate_rooms
    from tinyfleet.simulations.building import with_changes as changed
    from tinyfleet.simulations.usecases.presence import features

    room = sample_room(rng)
    aged = changed(
        room,
        co2_offset=room.co2_offset + 300.0,
        co2_gain=room.co2_gain * 0.8,
        temp_offset=room.temp_offset + 1.5,
        light_gain=room.light_gain * 0.5,
    )
    factor = 3.0 if room.ach_on < 2.5 else 1.0 / 3.0
    ventilated = changed(aged, ach_on=room.ach_on * factor, ach_off=room.ach_off * factor)
    season = "summer" if room.season != "summer" else "winter"
    seasoned = changed(ventilated, season=season)
    days = int(np.ceil(length * PRESENCE_STEP_MINUTES / MINUTES_PER_DAY))
    trace = simulate_rooms([(r, days) for r in (room, aged, ventilated, seasoned)], rng)
    x_all = features(trace)  # the CO2 slope uses every reading the sensor took
    xs, ys = [], []
    for segment in range(SEGMENTS):
        start = segment * days * MINUTES_PER_DAY
        rows = np.flatnonzero(
            (trace.minutes >= start) & (trace.minutes % PRESENCE_STEP_MINUTES == 0)
        )[:length]
        if len(rows) < length:
            raise UsageError("presence drift: segment shorter than asked")
        xs.append(x_all[rows])
        ys.append(trace.occupied[rows])
    points = tuple(length * s for s in range(1, SEGMENTS))
    labels = (
        "sensor offset drift",
        f"ventilation x{factor:.2g}",
        f"season {room.season} -> {season}",
    )
    return DriftStream(np.concatenate(xs), np.concatenate(ys), points, labels)


SCENARIOS: dict[str, Callable[[np.random.Generator, int], DriftStream]] = {
    "sine": sine_stream,
    "digits": digits_stream,
    "presence": presence_stream,
}
DEFAULT_LENGTH = {"sine": 400, "digits": 400, "presence": 720}
# Presence streams have days and nights: a window of one day (144 readings) is the
# shortest that is not just "the night after the drift point".
DEFAULT_WINDOW = {"sine": 50, "digits": 50, "presence": 144}
DEFAULT_DEVICES = {"sine": 50, "digits": 20, "presence": 10}


def drift_stream(use_case: str, rng: np.random.Generator, length: int) -> DriftStream:
    if use_case not in SCENARIOS:
        raise UsageError(
            f"no drift scenario for {use_case!r}; choose from {', '.join(sorted(SCENARIOS))}"
        )
    if length < 20:
        raise UsageError(f"--segment-length must be >= 20, got {length}")
    return SCENARIOS[use_case](rng, int(length))
