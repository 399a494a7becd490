"""What a use case is: a source of device tasks plus the model a device learns.

A *task* is one device's private data stream (a sine with its own amplitude/phase, a set of
handwritten-character classes ...). Devices learn online from it, one sample at a time.
Use cases register themselves in :data:`USE_CASES` (see :func:`get_use_case`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.errors import UsageError


class Task(Protocol):
    """One device's data source. ``sample`` returns raw inputs (before any backbone)."""

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh samples ``(x, y)``: ``x`` of shape ``(n, *input_shape)``; ``y`` of
        shape ``(n, out)`` floats (regression) or ``(n,)`` int labels (classification)."""
        ...


class Embedder(Protocol):
    """Maps raw inputs to head inputs (the int8 backbone on TFLM, or identity)."""

    def embed(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class UseCase:
    """A use case: how to make device tasks, the head a device trains, and defaults.

    ``make_backbone`` returns the frozen feature extractor (``None``: the head sees raw
    inputs, as for sine). ``sample_task(rng, split)`` makes a new device's task; ``split``
    is ``"train"`` (devices that take part in federated rounds) or ``"heldout"`` (devices
    never seen in training, used for few-shot evaluation).
    """

    name: str
    metric: str  # "mse" | "accuracy"
    head_spec: HeadSpec
    sample_task: Callable[[np.random.Generator, str], Task]
    make_backbone: Callable[[], Embedder | None] = lambda: None
    defaults: dict[str, Any] = field(default_factory=dict)


USE_CASES: dict[str, Callable[..., UseCase]] = {}


def register_use_case(name: str) -> Callable[[Callable[..., UseCase]], Callable[..., UseCase]]:
    def deco(factory: Callable[..., UseCase]) -> Callable[..., UseCase]:
        USE_CASES[name] = factory
        return factory

    return deco


def get_use_case(name: str, data_dir: str | Path | None = None) -> UseCase:
    """The registered use case ``name``; ``data_dir`` (``--data-dir``) points a use case
    that can read real data at its files (its factory takes ``data_dir``)."""
    # Importing the modules registers them (kept lazy: digits needs the backbone model).
    from tinyfleet.simulations import usecases  # noqa: F401

    if name not in USE_CASES:
        raise UsageError(f"unknown use case {name!r}; choose from {', '.join(sorted(USE_CASES))}")
    factory = USE_CASES[name]
    if data_dir is None:
        return factory()
    if "data_dir" not in inspect.signature(factory).parameters:
        raise UsageError(f"use case {name!r} has no real-data loader: leave out --data-dir")
    return factory(data_dir=data_dir)  # type: ignore[call-arg]
