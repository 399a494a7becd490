"""Handwritten characters: the paper's Omniglot setting, or rotated digits by default.

Without ``--data-dir`` ``characters`` is the embedded rotated-digits set
(:mod:`tinyfleet.simulations.usecases.digits`, under this name). With ``--data-dir``
pointing at an Omniglot folder (:mod:`tinyfleet.simulations.loaders.omniglot`) a device
is a 5-way task over characters of ONE alphabet (its own, in its own label order):
training devices draw from the 30 background alphabets, held-out devices from the 20
evaluation alphabets, which no training device ever sees. Images are resized to the
digits backbone's 8x8 input and embedded by that int8 backbone (pre-trained on digits
only: for Omniglot it is a transferred feature extractor).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyfleet.errors import InputFileError, UsageError
from tinyfleet.simulations.usecase import UseCase, register_use_case
from tinyfleet.simulations.usecases import digits

if TYPE_CHECKING:
    from tinyfleet.device.embedding_cache import CachedEmbedder
    from tinyfleet.simulations.loaders.omniglot import Alphabet

WAYS = digits.WAYS


@dataclass(frozen=True)
class AlphabetTask:
    """``ways`` characters of one alphabet: device label ``i`` = ``characters[i]``."""

    alphabet: Alphabet
    characters: tuple[int, ...]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if n < 0:
            raise UsageError(f"cannot sample {n} characters")
        labels = rng.integers(0, len(self.characters), size=int(n))
        rows = np.empty(int(n), dtype=np.int64)
        for i, label in enumerate(labels):
            pool = np.flatnonzero(self.alphabet.character == self.characters[int(label)])
            rows[i] = pool[int(rng.integers(0, len(pool)))]
        return self.alphabet.images[rows].copy(), labels.astype(np.int64)


@dataclass(frozen=True)
class OmniglotTasks:
    """``sample_task`` over loaded alphabets."""

    splits: dict[str, tuple[Alphabet, ...]]
    ways: int = WAYS

    def __call__(self, rng: np.random.Generator, split: str) -> AlphabetTask:
        if split not in self.splits:
            raise UsageError(f"unknown split {split!r}; expected 'train' or 'heldout'")
        usable = [a for a in self.splits[split] if a.num_characters >= self.ways]
        if not usable:
            raise UsageError(f"no {split} alphabet has {self.ways} characters")
        alphabet = usable[int(rng.integers(0, len(usable)))]
        chosen = rng.choice(alphabet.num_characters, size=self.ways, replace=False)
        return AlphabetTask(alphabet, tuple(int(c) for c in chosen))

    def all_images(self) -> np.ndarray:
        return np.concatenate([a.images for group in self.splits.values() for a in group])


def omniglot_backbone(tasks: OmniglotTasks) -> CachedEmbedder:
    """The digits int8 backbone, cached over every Omniglot image."""
    from tinyfleet.device.embedding_cache import CachedEmbedder

    return CachedEmbedder(digits.load_backbone().backbone, tasks.all_images())


@register_use_case("characters")
def characters_use_case(data_dir: str | Path | None = None) -> UseCase:
    base = digits.digits_use_case()
    if data_dir is None:
        return replace(base, name="characters")
    from tinyfleet.simulations.loaders import omniglot as loader

    tasks = OmniglotTasks(loader.load_omniglot(Path(data_dir)))
    for split, alphabets in tasks.splits.items():
        if not any(a.num_characters >= WAYS for a in alphabets):
            raise InputFileError(
                f"{data_dir}: no {loader.SPLITS[split]} alphabet has {WAYS} characters "
                "(a device learns a 5-way task)"
            )
    return replace(
        base,
        name="characters",
        sample_task=tasks,
        make_backbone=lambda: omniglot_backbone(tasks),
    )
