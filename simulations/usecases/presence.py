"""Presence detection: is anybody in the room? One device = one room's multisensor.

Data: by default a simulated building (:mod:`tinyfleet.simulations.building`): every
device is a new room with its own schedule, ventilation, season, sensor offsets, noise
and sampling interval, simulated for :data:`DAYS` days. With ``--data-dir`` the rooms come
from UCI "Occupancy Detection" CSV files instead
(:mod:`tinyfleet.simulations.loaders.uci_occupancy`).

A sample is one sensor reading turned into :data:`FEATURES` (6 numbers, fixed scaling a
device applies before its backbone): temperature, relative humidity, light, CO2,
humidity ratio and the CO2 slope since the previous reading (ppm per minute; a device
keeps its last CO2 value). The label is 1 when the room is occupied.

Rooms: ``sample_task(rng, split)`` simulates a room from ``rng``; train and held-out
rooms come from the same building generator (different random streams), the backbone's
pre-training rooms from a fixed seed of their own (:data:`PRETRAIN_SEED`). A task
draws its samples uniformly from the room's two weeks, so its class balance is the
room's own (mostly empty: nights and weekends).

Model: an int8 FC-only MLP backbone 6 -> 32 (ReLU) -> 16 (linear, standardised),
pre-trained on the pre-training rooms to tell occupied from empty, exported by
``tinyfleet export presence`` (704 MACs, ~1 KB of weights), and a float head
16 -> 16 (ReLU) -> 2 trained on the device. Why a backbone and not raw features as for
sine: the rooms differ by sensor offsets, gains and light levels, and a frozen int8
feature layer shared by all rooms is what a microcontroller fleet ships; the head then
learns each room's own thresholds from a few labels.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.errors import UsageError
from tinyfleet.simulations.building import Trace, sample_room, simulate_room
from tinyfleet.simulations.usecase import UseCase, register_use_case

if TYPE_CHECKING:
    from tinyfleet.simulations.int8_cache import QuantizedInputCache

FEATURES = ("temperature", "humidity", "light", "co2", "humidity_ratio", "co2_slope")
# (value - centre) / scale per feature, then the backbone's int8 input quantisation.
CENTRE = np.array([21.0, 35.0, 0.0, 600.0, 0.0055, 0.0])
SCALE = np.array([3.0, 15.0, 300.0, 300.0, 0.0025, 10.0])
DAYS = 14
PRETRAIN_SEED = 20251203
PRETRAIN_ROOMS = 60
PRETRAIN_SAMPLES = 30_000
EMBEDDING_DIM = 16
MODEL_DIR_ENV = "TINYFLEET_PRESENCE_MODEL_DIR"
PRESENCE_HEAD = HeadSpec((EMBEDDING_DIM, 16, 2), "relu", "softmax_ce")

PRESENCE_DEFAULTS: dict[str, object] = {
    "devices": 200,
    "rounds": 1000,
    "inner_lr": 0.05,
    "k": 10,
    "beta0": 0.5,
    "support_size": 50,
    "epochs": 1,
    "batch_size": 10,
    # Baselines' device lr, tuned on {0.05, 0.1, 0.2, 0.5, 1.0} (seed 0): 0.5 (Reptile 0.960,
    # FedAvg 0.957; 0.1 gave 0.943/0.948). TinyReptile's inner lr on {0.02, 0.05, 0.1, 0.2}:
    # 0.05 (0.961; 0.955/0.961/0.959 for the others).
    "baseline_inner_lr": 0.5,
    "clients_per_round": 5,
    "shots": 10,
    "adapt_steps": 10,
    "adapt_lr": 0.05,
    "query_size": 200,
    "heldout_devices": 50,
}


def features(trace: Trace) -> np.ndarray:
    """``(n, 6)`` float32 model inputs of a trace's readings (see :data:`FEATURES`)."""
    readings = np.asarray(trace.readings, dtype=np.float64)
    co2 = readings[:, 3]
    minutes = np.asarray(trace.minutes, dtype=np.float64)
    slope = np.zeros(len(co2))
    if len(co2) > 1:
        dt = np.diff(minutes)
        ok = dt > 0
        slope[1:][ok] = np.diff(co2)[ok] / dt[ok]
    raw = np.column_stack([readings, slope])
    return ((raw - CENTRE) / SCALE).astype(np.float32)


@dataclass(frozen=True)
class PresenceTask:
    """One room: its readings as model inputs ``x`` and occupancy labels ``y``."""

    x: np.ndarray
    y: np.ndarray
    name: str = ""

    @classmethod
    def from_trace(cls, trace: Trace) -> PresenceTask:
        if len(trace) < 2:
            raise UsageError(f"room {trace.name or '?'} has fewer than 2 readings")
        return cls(features(trace), np.asarray(trace.occupied, dtype=np.int64), trace.name)

    @property
    def occupied_fraction(self) -> float:
        return float(self.y.mean())

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` readings drawn uniformly from the room's record, ``(n, 6)`` and ``(n,)``."""
        if n < 0:
            raise UsageError(f"cannot sample {n} readings")
        rows = rng.integers(0, len(self.y), size=int(n))
        return self.x[rows].copy(), self.y[rows].copy()


def simulated_room_task(rng: np.random.Generator, split: str) -> PresenceTask:
    """A new simulated room (train, validation and held-out rooms come from the same
    building; ``rng`` differs per split, see ``device_task_rng``)."""
    if split not in ("train", "heldout", "validation"):
        raise UsageError(f"unknown split {split!r}; expected 'train', 'heldout' or 'validation'")
    room = sample_room(rng)
    return PresenceTask.from_trace(simulate_room(room, DAYS, rng, name=f"{room.kind}"))


@lru_cache(maxsize=1)
def pretraining_data() -> tuple[np.ndarray, np.ndarray]:
    """Readings of :data:`PRETRAIN_ROOMS` rooms no device ever is, and their labels."""
    rng = np.random.default_rng(PRETRAIN_SEED)
    xs, ys = [], []
    for _ in range(PRETRAIN_ROOMS):
        task = simulated_room_task(rng, "train")
        x, y = task.sample(PRETRAIN_SAMPLES // PRETRAIN_ROOMS, rng)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


@dataclass(frozen=True)
class RoomPool:
    """Rooms read from files: a device draws one room of its split (with replacement)."""

    train: tuple[PresenceTask, ...]
    heldout: tuple[PresenceTask, ...]

    def __call__(self, rng: np.random.Generator, split: str) -> PresenceTask:
        if split not in ("train", "heldout"):
            raise UsageError(f"unknown split {split!r}; expected 'train' or 'heldout'")
        pool = self.train if split == "train" else self.heldout
        return pool[int(rng.integers(0, len(pool)))]


def model_dir() -> Path:
    """``$TINYFLEET_PRESENCE_MODEL_DIR`` or ``~/.cache/tinyfleet/models/presence/``."""
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tinyfleet" / "models" / "presence"


def load_backbone(directory: Path | None = None) -> QuantizedInputCache:
    """The exported int8 backbone (exported first, ~10 s with TensorFlow, when missing or
    made by an older recipe), behind a cache keyed by the int8 input bytes."""
    from tinyfleet.device.backbone import Int8Backbone
    from tinyfleet.device.tooling.modelcard import read_model_card
    from tinyfleet.simulations.export import export_use_case, recipe_tag
    from tinyfleet.simulations.int8_cache import QuantizedInputCache

    directory = model_dir() if directory is None else Path(directory)
    card_path = directory / "model_card.json"
    card: dict[str, Any] | None = read_model_card(card_path) if card_path.is_file() else None
    if card is None or (card.get("pretraining") or {}).get("recipe") != recipe_tag("presence"):
        print(
            f"tinyfleet: exporting the presence backbone to {directory} (one-time, TensorFlow)",
            file=sys.stderr,
        )
        card = export_use_case("presence", directory)
    backbone = Int8Backbone.from_file(
        directory / str(card["tflite_file"]), arena_bytes=int(card["arena_bytes"])
    )
    return QuantizedInputCache(backbone)


def presence_use_case_from(rooms: Any, name: str = "presence") -> UseCase:
    return UseCase(
        name=name,
        metric="accuracy",
        head_spec=PRESENCE_HEAD,
        sample_task=rooms,
        make_backbone=load_backbone,
        defaults=dict(PRESENCE_DEFAULTS),
    )


@register_use_case("presence")
def presence_use_case(data_dir: str | Path | None = None) -> UseCase:
    """Simulated building by default; UCI Occupancy CSVs from ``data_dir`` when given."""
    if data_dir is None:
        return presence_use_case_from(simulated_room_task)
    from tinyfleet.simulations.loaders.uci_occupancy import load_rooms

    train, heldout = load_rooms(Path(data_dir))
    return presence_use_case_from(
        RoomPool(
            tuple(PresenceTask.from_trace(t) for t in train),
            tuple(PresenceTask.from_trace(t) for t in heldout),
        )
    )
