"""A simulated building for presence detection: rooms with people, ventilation and weather.

Each room is one device. Its physics run on a one-minute grid; its sensor is read every
``sample_minutes`` minutes (1, 2 or 5) with the room's own offsets, gains and noise. The
readings have the columns of the UCI "Occupancy Detection" files (Temperature in degC,
Humidity in %RH, Light in lux, CO2 in ppm, HumidityRatio in kg water / kg dry air) and
the label is ``occupied = people > 0``.

Physics (explicit Euler, dt = 1 min; ``n`` people, ``V`` m3, ``ach`` air changes per hour):

* CO2 mass balance: ``C' = C + g n 1e6 / V + ach/60 (C_out - C)`` with ``g`` ~0.3 L/min
  exhaled CO2 per person: CO2 rises while people are in and decays with ventilation.
* Moisture balance, the same form: ``W' = W + m n / (1.2 V) + ach/60 (W_out - W)`` with
  ``m`` ~50 g/h per person; relative humidity from ``W`` and the air temperature
  (Magnus formula, 101325 Pa).
* Temperature relaxes (time constant ``tau``) towards the heating set point (day/night)
  plus the people's heat, the sun through the window and a leak towards outdoors.
* Light: daylight through the window (sun elevation x the day's cloudiness) plus the
  lamps, which people switch on for most of their stays and sometimes leave on.
* Weather: outdoor temperature = season mean + daily cycle + a day-to-day random walk;
  outdoor humidity ratio and day length follow the season.

Occupancy schedules differ per room kind: offices (arrive ~8:30, leave ~17:30, lunch,
absent days), meeting rooms (short meetings of several people), classrooms (timetabled
lessons of many people); weekends are mostly empty.

All recurrences are linear, ``x[t+1] = a[t] x[t] + b[t]``, and are solved in closed form
one day at a time (:func:`linear_recurrence`), so a two-week room costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tinyfleet.errors import UsageError

MINUTES_PER_DAY = 24 * 60
COLUMNS = ("Temperature", "Humidity", "Light", "CO2", "HumidityRatio")
KINDS = ("office", "meeting", "classroom")
SEASONS = {  # outdoor mean temperature, daily amplitude, humidity ratio, day length (h)
    "winter": (2.0, 4.0, 0.0035, 9.0),
    "spring": (11.0, 6.0, 0.0060, 12.5),
    "summer": (21.0, 7.0, 0.0100, 15.5),
}
PRESSURE_PA = 101325.0


@dataclass(frozen=True)
class Room:
    """One room's physics, schedule and sensor (see the module docstring for units)."""

    kind: str
    volume_m3: float
    capacity: int
    ach_on: float  # air changes per hour while the ventilation runs (weekdays 7-19)
    ach_off: float
    co2_per_person_lpm: float
    setpoint_day: float
    setpoint_night: float
    tau_h: float
    heat_per_person_k: float
    window_lux: float
    lamp_lux: float
    lights_prob: float
    season: str
    sample_minutes: int
    co2_offset: float
    co2_gain: float
    temp_offset: float
    rh_offset: float
    light_gain: float
    co2_noise: float
    temp_noise: float
    rh_noise: float
    light_noise: float
    co2_outdoor: float = 410.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown room kind {self.kind!r}; choose from {KINDS}")
        if self.season not in SEASONS:
            raise UsageError(f"unknown season {self.season!r}; choose from {sorted(SEASONS)}")
        if self.volume_m3 <= 0 or self.capacity < 1 or self.sample_minutes < 1:
            raise UsageError("room volume, capacity and sample interval must be positive")


def sample_room(rng: np.random.Generator) -> Room:
    """A random room: its kind, size, ventilation, season and sensor quirks."""
    kind = str(rng.choice(KINDS, p=[0.6, 0.25, 0.15]))
    volume = float(rng.uniform(30, 90) if kind == "office" else rng.uniform(60, 250))
    capacity = max(1, int(volume / (18 if kind == "office" else 5)))
    return Room(
        kind=kind,
        volume_m3=volume,
        capacity=capacity,
        ach_on=float(rng.uniform(0.8, 6.0)),
        ach_off=float(rng.uniform(0.1, 0.7)),
        co2_per_person_lpm=float(rng.uniform(0.25, 0.45)),
        setpoint_day=float(rng.normal(21.5, 0.8)),
        setpoint_night=float(rng.normal(18.0, 1.0)),
        tau_h=float(rng.uniform(1.5, 6.0)),
        heat_per_person_k=float(rng.uniform(0.05, 0.4)),
        window_lux=float(rng.uniform(30, 800)),
        lamp_lux=float(rng.uniform(250, 650)),
        lights_prob=float(rng.uniform(0.7, 1.0)),
        season=str(rng.choice(tuple(SEASONS))),
        sample_minutes=int(rng.choice([1, 2, 5])),
        co2_offset=float(rng.normal(0.0, 40.0)),
        co2_gain=float(rng.uniform(0.9, 1.1)),
        temp_offset=float(rng.normal(0.0, 0.6)),
        rh_offset=float(rng.normal(0.0, 3.0)),
        light_gain=float(rng.uniform(0.6, 1.4)),
        co2_noise=float(rng.uniform(3, 20)),
        temp_noise=float(rng.uniform(0.03, 0.2)),
        rh_noise=float(rng.uniform(0.2, 1.0)),
        light_noise=float(rng.uniform(2, 15)),
    )


@dataclass(frozen=True)
class Trace:
    """Sensor readings of one room: ``minutes`` since the start (non-decreasing ints),
    ``readings`` ``(n, 5)`` float64 in :data:`COLUMNS` order, ``occupied`` ``(n,)`` int64."""

    minutes: np.ndarray
    readings: np.ndarray
    occupied: np.ndarray
    name: str = ""

    def __len__(self) -> int:
        return len(self.occupied)


def linear_recurrence(a: np.ndarray, b: np.ndarray, x0: float) -> np.ndarray:
    """``x[0] = x0, x[t+1] = a[t] x[t] + b[t]``, solved one day-long chunk at a time with
    cumulative products (0 < a <= 1 keeps every product of a chunk well inside float64)."""
    out = np.empty(len(a) + 1)
    out[0] = x0
    for start in range(0, len(a), MINUTES_PER_DAY):
        aa = a[start : start + MINUTES_PER_DAY]
        bb = b[start : start + MINUTES_PER_DAY]
        p = np.cumprod(aa)  # p[t] = a[0] ... a[t]
        # x[t+1] = p[t] x0 + sum_{s<=t} b[s] p[t] / p[s]
        out[start + 1 : start + 1 + len(aa)] = p * (out[start] + np.cumsum(bb / p))
    return out


def _occupancy(room: Room, days: int, rng: np.random.Generator, first_weekday: int) -> np.ndarray:
    """People in the room at every minute of ``days`` days."""
    people = np.zeros(days * MINUTES_PER_DAY)

    def put(day: int, start_h: float, end_h: float, n: int) -> None:
        lo = day * MINUTES_PER_DAY + int(np.clip(start_h, 0, 24) * 60)
        hi = day * MINUTES_PER_DAY + int(np.clip(end_h, 0, 24) * 60)
        if hi > lo:
            people[lo:hi] = n

    for day in range(days):
        weekday = (first_weekday + day) % 7 < 5
        if room.kind == "office":
            if weekday and rng.random() > 0.12:
                arrive, leave = rng.normal(8.5, 0.7), rng.normal(17.3, 0.9)
                n = int(rng.integers(1, room.capacity + 1))
                put(day, arrive, leave, n)
                if rng.random() < 0.7:
                    lunch = rng.normal(12.3, 0.3)
                    put(day, lunch, lunch + rng.uniform(0.5, 1.0), 0)
                for _ in range(int(rng.poisson(1.5))):
                    gap = rng.uniform(arrive, leave)
                    put(day, gap, gap + rng.uniform(0.15, 1.0), 0)
            elif not weekday and rng.random() < 0.08:
                start = rng.uniform(9, 15)
                put(day, start, start + rng.uniform(1, 4), 1)
        elif room.kind == "meeting":
            if weekday:
                for _ in range(int(rng.poisson(3.0))):
                    start = rng.uniform(8, 17)
                    n = int(rng.integers(2, room.capacity + 1)) if room.capacity > 2 else 1
                    put(day, start, start + rng.choice([0.5, 1.0, 1.5]), n)
        elif weekday:  # classroom: a timetable of lessons, most slots taken
            for slot in (8.0, 10.0, 13.0, 15.0):
                if rng.random() < 0.75:
                    n = int(rng.integers(max(1, room.capacity // 2), room.capacity + 1))
                    put(day, slot + rng.uniform(0, 0.2), slot + 1.5 + rng.uniform(-0.1, 0.1), n)
    return people


def _weather(
    room: Room, days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outdoor temperature, outdoor humidity ratio and daylight fraction (0..1) per minute."""
    mean, amplitude, w_out, day_length = SEASONS[room.season]
    hours = (np.arange(days * MINUTES_PER_DAY) % MINUTES_PER_DAY) / 60.0
    day_index = np.arange(days * MINUTES_PER_DAY) // MINUTES_PER_DAY
    walk = np.cumsum(rng.normal(0.0, 1.5, size=days))
    t_out = mean + walk[day_index] + amplitude * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    cloud = rng.uniform(0.2, 1.0, size=days)[day_index]
    sunrise = 12.0 - day_length / 2
    sun = np.clip(np.sin(np.pi * (hours - sunrise) / day_length), 0.0, None)
    sun[(hours < sunrise) | (hours > sunrise + day_length)] = 0.0
    w = w_out * (1.0 + rng.normal(0.0, 0.1, size=days))[day_index]
    return t_out, np.clip(w, 0.0015, None), sun * cloud


def _lamps(room: Room, people: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1 where the lamps are on: most stays switch them on; some are left on until 20:00."""
    occupied = people > 0
    on = np.zeros(len(people), dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], occupied.astype(np.int8), [0]))))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if rng.random() < room.lights_prob:
            on[start:end] = True
            if rng.random() < 0.05:
                day_end = (start // MINUTES_PER_DAY) * MINUTES_PER_DAY + 20 * 60
                on[end : max(end, day_end)] = True
    return on


def relative_humidity(temperature: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """%RH of air at ``temperature`` degC holding ``ratio`` kg water per kg dry air."""
    saturation = 610.94 * np.exp(17.625 * temperature / (temperature + 243.04))
    vapour = ratio * PRESSURE_PA / (0.622 + ratio)
    return np.clip(100.0 * vapour / saturation, 0.0, 100.0)


def simulate_rooms(
    segments: list[tuple[Room, int]], rng: np.random.Generator, name: str = ""
) -> Trace:
    """One room over consecutive segments ``(room, days)`` (a segment may change the
    ventilation, the season or the sensor: the physical state carries over)."""
    if not segments or any(days < 1 for _, days in segments):
        raise UsageError("a room simulation needs segments of >= 1 day")
    first_weekday = int(rng.integers(0, 7))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("n", "ach", "t", "w", "sun", "lamp")}
    rooms: list[np.ndarray] = []
    day = 0
    for index, (room, days) in enumerate(segments):
        people = _occupancy(room, days, rng, (first_weekday + day) % 7)
        t_out, w_out, sun = _weather(room, days, rng)
        hours = (np.arange(days * MINUTES_PER_DAY) % MINUTES_PER_DAY) / 60.0
        weekday = ((first_weekday + day + np.arange(days * MINUTES_PER_DAY) // 1440) % 7) < 5
        hvac = weekday & (hours >= 7) & (hours < 19)
        parts["n"].append(people)
        parts["ach"].append(np.where(hvac, room.ach_on, room.ach_off))
        parts["t"].append(t_out)
        parts["w"].append(w_out)
        parts["sun"].append(sun)
        parts["lamp"].append(_lamps(room, people, rng).astype(float))
        rooms.append(np.full(days * MINUTES_PER_DAY, index))
        day += days
    n, ach, t_out, w_out, sun, lamp = (np.concatenate(parts[k]) for k in parts)
    which = np.concatenate(rooms)

    def per_minute(attr: str) -> np.ndarray:
        return np.array([float(getattr(r, attr)) for r, _ in segments])[which]

    volume = per_minute("volume_m3")
    vent = ach / 60.0
    co2_out = per_minute("co2_outdoor")
    co2 = linear_recurrence(
        1.0 - vent,
        vent * co2_out + per_minute("co2_per_person_lpm") * 1e-3 * n * 1e6 / volume,
        float(co2_out[0]),
    )[:-1]
    ratio = linear_recurrence(
        1.0 - vent, vent * w_out + (0.05 / 60.0) * n / (1.2 * volume), float(w_out[0])
    )[:-1]
    hours = (np.arange(len(n)) % MINUTES_PER_DAY) / 60.0
    weekday_day = (hours >= 6) & (hours < 19)
    setpoint = np.where(weekday_day, per_minute("setpoint_day"), per_minute("setpoint_night"))
    target = (
        setpoint
        + per_minute("heat_per_person_k") * n
        + 2.0 * sun * per_minute("window_lux") / 800.0
        + 0.08 * (t_out - setpoint)
    )
    rate = 1.0 / (60.0 * per_minute("tau_h"))
    temperature = linear_recurrence(1.0 - rate, rate * target, float(target[0]))[:-1]
    light = sun * per_minute("window_lux") + lamp * per_minute("lamp_lux")
    rh = relative_humidity(temperature, ratio)

    # The sensor: read every sample_minutes (of the segment), with offsets, gains, noise.
    minutes = _read_times(segments)
    seg = which[minutes]

    def sensor(attr: str) -> np.ndarray:
        return np.array([float(getattr(r, attr)) for r, _ in segments])[seg]

    k = len(minutes)
    readings = np.column_stack(
        [
            temperature[minutes]
            + sensor("temp_offset")
            + rng.normal(0, 1, k) * sensor("temp_noise"),
            np.clip(
                rh[minutes] + sensor("rh_offset") + rng.normal(0, 1, k) * sensor("rh_noise"), 0, 100
            ),
            np.clip(
                light[minutes] * sensor("light_gain") + rng.normal(0, 1, k) * sensor("light_noise"),
                0,
                None,
            ),
            co2[minutes] * sensor("co2_gain")
            + sensor("co2_offset")
            + rng.normal(0, 1, k) * sensor("co2_noise"),
            ratio[minutes],
        ]
    )
    return Trace(minutes.astype(np.int64), readings, (n[minutes] > 0).astype(np.int64), name)


def _read_times(segments: list[tuple[Room, int]]) -> np.ndarray:
    times, start = [], 0
    for room, days in segments:
        end = start + days * MINUTES_PER_DAY
        times.append(np.arange(start, end, room.sample_minutes))
        start = end
    return np.concatenate(times)


def simulate_room(room: Room, days: int, rng: np.random.Generator, name: str = "") -> Trace:
    """``days`` days of one room (:func:`simulate_rooms` with one segment)."""
    return simulate_rooms([(room, int(days))], rng, name)


def with_changes(room: Room, **changes: object) -> Room:
    """The same room with some fields changed (a drift: new ventilation, season, sensor)."""
    return replace(room, **changes)  # type: ignore[arg-type]
