"""A simulated fleet: device streams and held-out few-shot episodes of a use case.

Device ``i`` of split ``split`` gets the task ``use_case.sample_task(device_task_rng(seed,
i, split), split)``; its samples pass through the use case's backbone (the int8 TFLM
model, or nothing for sine) before reaching the head. Held-out episodes draw shots and
then query points from ``eval_rng(seed, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyfleet.device.rounds import StreamForDevice
from tinyfleet.errors import UsageError
from tinyfleet.server.fewshot import Episode
from tinyfleet.simulations.seeding import device_task_rng, eval_rng
from tinyfleet.simulations.usecase import Embedder, Task, UseCase


@dataclass(frozen=True)
class EmbeddedStream:
    """A device's task seen through the backbone: ``sample`` returns head inputs."""

    task: Task
    embedder: Embedder | None

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.task.sample(n, rng)
        if self.embedder is None:
            return np.asarray(x, np.float32).reshape(len(x), -1), y
        return np.asarray(self.embedder.embed(x), np.float32).reshape(len(x), -1), y


class Fleet:
    """Streams of training devices (cached per device) and held-out episodes."""

    def __init__(self, use_case: UseCase, embedder: Embedder | None, cache_size: int = 100_000):
        self.use_case = use_case
        self.embedder = embedder
        self._streams: dict[tuple[int, int], EmbeddedStream] = {}
        self._cache_size = int(cache_size)

    @property
    def macs_per_sample(self) -> int:
        return int(getattr(self.embedder, "macs", 0) or 0)

    @property
    def arena_bytes(self) -> int:
        return int(getattr(self.embedder, "arena_bytes", 0) or 0)

    def task(self, seed: int, device_index: int, split: str) -> Task:
        return self.use_case.sample_task(device_task_rng(seed, device_index, split), split)

    def stream(self, seed: int, device_index: int) -> EmbeddedStream:
        """Training device ``device_index``'s stream (the ClientApp's ``stream_for_device``)."""
        key = (int(seed), int(device_index))
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= self._cache_size:
                self._streams.clear()
            stream = EmbeddedStream(self.task(seed, device_index, "train"), self.embedder)
            self._streams[key] = stream
        return stream

    def stream_for_device(self) -> StreamForDevice:
        return self.stream

    def heldout_episodes(
        self, seed: int, count: int, shots: int, query: int, split: str = "heldout"
    ) -> list[Episode]:
        """``count`` evaluation devices of ``split`` (``heldout``: the test devices;
        ``validation``: the tuner's), each with ``shots`` shots and ``query`` query points."""
        if int(count) < 1 or int(shots) < 1 or int(query) < 1:
            raise UsageError("held-out devices, shots and query points must all be >= 1")
        episodes = []
        for index in range(int(count)):
            stream = EmbeddedStream(self.task(seed, index, split), self.embedder)
            rng = eval_rng(seed, index, split)
            shots_x, shots_y = stream.sample(int(shots), rng)
            query_x, query_y = stream.sample(int(query), rng)
            episodes.append(Episode(shots_x, shots_y, query_x, query_y))
        return episodes
