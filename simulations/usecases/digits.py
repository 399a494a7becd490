"""Handwritten digits, Omniglot-style: scikit-learn digits and their rotations as classes.

Data: :func:`sklearn.datasets.load_digits` (1797 real 8x8 handwritten digits, shipped
with scikit-learn, no download), pixel values scaled to [0, 1]. Rotating every image by
0, 90, 180 and 270 degrees makes 40 classes, ``class = 4 * digit + quarter_turns``
(as Omniglot meta-learning treats rotated characters as new characters).

Class splits are FIXED (a permutation under :data:`SPLIT_SEED`, independent of any
simulation seed) and disjoint:

* ``pretrain`` (20 classes): only the backbone's pre-training (``tinyfleet export``) sees
  them;
* ``train`` (12 classes): the devices that take part in federated rounds;
* ``heldout`` (8 classes): devices used only for few-shot evaluation.

A device's task (:class:`DigitsTask`) is its own N-way subset of its split's classes
(N = ``ways``, default 5) in its own random order -- device label ``i`` means class
``classes[i]`` -- and it draws its own samples (uniform label, then a random image of
that class) from its own random stream.

Speed: the use case's ``make_backbone`` returns a
:class:`~tinyfleet.device.embedding_cache.CachedEmbedder` over all 7188 images, so
``backbone.embed(task.sample(...)[0])`` is a dictionary lookup, bit-identical to TFLM.
A runner may go further and skip the raw images altogether: draw ``ids, y =
task.sample_ids(n, rng)`` (same random stream use as :meth:`DigitsTask.sample`) and
take ``backbone.embeddings(ids)``; ``task.sample(n, rng)`` is exactly
``(all_images()[ids], y)`` for the same rng state.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.errors import UsageError
from tinyfleet.simulations.usecase import UseCase, register_use_case

if TYPE_CHECKING:
    from tinyfleet.device.embedding_cache import CachedEmbedder

SPLIT_SEED = 20240531
NUM_DIGITS = 10
ROTATIONS = 4
NUM_CLASSES = NUM_DIGITS * ROTATIONS
SPLIT_SIZES = {"pretrain": 20, "train": 12, "heldout": 8}
EMBEDDING_DIM = 32
WAYS = 5
MODEL_DIR_ENV = "TINYFLEET_MODEL_DIR"

# The head trained on the device: embedding -> hidden -> N classes. A hidden layer gives
# meta-learning something to learn beyond a permutation-symmetric linear read-out.
DIGITS_HEAD = HeadSpec((EMBEDDING_DIM, 32, WAYS), "relu", "softmax_ce")

# Defaults for ``tinyfleet simulate digits`` (same keys as the sine use case):
#   inner_lr / adapt_lr  head SGD step size on device. The exported embedding is
#                        standardised (centred, RMS ~1), so a step of 0.05 is stable.
#                        A numpy TinyReptile check on the cached embeddings (2000
#                        rounds, k = 10, beta0 0.3, 100 held-out devices, 10 shots /
#                        10 online steps): 5-way accuracy ~0.65 vs ~0.53 from scratch
#                        (chance 0.2); beta0 = 1.0 made the meta-learned ReLU head
#                        degrade (~0.59), lr 0.2 more so.
#   k                    samples (= online SGD steps) per TinyReptile round
#   shots, adapt_steps   held-out few-shot adaptation: ``shots`` labelled samples, seen
#                        online for ``adapt_steps`` steps; accuracy on ``query_size``
#   support_size ...     Reptile/FedAvg baselines: stored support set, epochs, batch size,
#                        baseline_inner_lr
DIGITS_DEFAULTS: dict[str, object] = {
    "devices": 200,
    "rounds": 2000,
    "inner_lr": 0.05,
    "k": 10,
    "beta0": 0.3,
    "support_size": 50,
    "epochs": 1,
    "batch_size": 10,
    # Baselines' device learning rate, tuned on {0.02, 0.05, 0.2, 0.5} (minibatch 10).
    "baseline_inner_lr": 0.2,
    "clients_per_round": 5,
    "shots": 10,
    "adapt_steps": 10,
    "adapt_lr": 0.05,
    "query_size": 100,
    "heldout_devices": 50,
    "ways": WAYS,
    # TinyMetaFed: the digits head (32-32-5) is smaller than sine's, so the fixed part of a
    # reply (header, fields) weighs more: 4% keeps bytes up <= 0.1x FedAvg's (5%: 0.106x).
    "top_p": 0.04,
}


@lru_cache(maxsize=1)
def _dataset() -> tuple[np.ndarray, np.ndarray]:
    """All rotated images ``(7188, 8, 8, 1)`` float32 in [0, 1] and their class ids."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    base = (digits.images / 16.0).astype(np.float32)
    images, classes = [], []
    for turns in range(ROTATIONS):
        images.append(np.rot90(base, k=turns, axes=(1, 2)))
        classes.append(digits.target.astype(np.int64) * ROTATIONS + turns)
    x = np.ascontiguousarray(np.concatenate(images)[..., None])
    y = np.concatenate(classes)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def all_images() -> np.ndarray:
    """Every image of every class, ``(7188, 8, 8, 1)`` float32 (read-only)."""
    return _dataset()[0]


def all_classes() -> np.ndarray:
    """Class id of each row of :func:`all_images`."""
    return _dataset()[1]


@lru_cache(maxsize=1)
def class_splits() -> dict[str, tuple[int, ...]]:
    """The fixed, disjoint class split (see module docstring)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(NUM_CLASSES)
    splits: dict[str, tuple[int, ...]] = {}
    start = 0
    for name, size in SPLIT_SIZES.items():
        splits[name] = tuple(sorted(int(c) for c in order[start : start + size]))
        start += size
    return splits


@cache
def _rows_of_class(cls: int) -> np.ndarray:
    rows = np.flatnonzero(all_classes() == cls)
    rows.setflags(write=False)
    return rows


def pretraining_data() -> tuple[np.ndarray, np.ndarray]:
    """Images of the ``pretrain`` classes and labels ``0..19`` (for ``tinyfleet export``)."""
    classes = class_splits()["pretrain"]
    rows = np.concatenate([_rows_of_class(c) for c in classes])
    relabel = {c: i for i, c in enumerate(classes)}
    labels = np.array([relabel[int(c)] for c in all_classes()[rows]], dtype=np.int64)
    return all_images()[rows], labels


@dataclass(frozen=True)
class DigitsTask:
    """One device's N-way task: device label ``i`` is global class ``classes[i]``."""

    classes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise UsageError(f"a digits task needs >= 2 distinct classes, got {self.classes}")
        if any(not 0 <= c < NUM_CLASSES for c in self.classes):
            raise UsageError(f"digits classes must be in [0, {NUM_CLASSES}), got {self.classes}")

    @property
    def ways(self) -> int:
        return len(self.classes)

    def sample_ids(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh samples as row ids into :func:`all_images` and device labels."""
        if n < 0:
            raise UsageError(f"cannot sample {n} digits")
        labels = rng.integers(0, self.ways, size=int(n))
        picks = rng.random(int(n))
        ids = np.empty(int(n), dtype=np.int64)
        for i, (label, u) in enumerate(zip(labels, picks, strict=True)):
            rows = _rows_of_class(self.classes[int(label)])
            ids[i] = rows[int(u * len(rows))]
        return ids, labels.astype(np.int64)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh images ``(n, 8, 8, 1)`` float32 in [0, 1] and int labels ``(n,)``."""
        ids, labels = self.sample_ids(n, rng)
        return all_images()[ids].copy(), labels


def sample_digits_task(rng: np.random.Generator, split: str, ways: int = WAYS) -> DigitsTask:
    """A new device: ``ways`` classes of ``split`` in a random order."""
    splits = class_splits()
    if split not in ("train", "heldout", "validation"):
        raise UsageError(f"unknown split {split!r}; expected 'train', 'heldout' or 'validation'")
    # Validation devices are new devices over the TRAINING classes: the class split (and
    # with it the pre-trained backbone) stays as it is, and model selection never sees a
    # test class.
    pool = splits["train" if split == "validation" else split]
    if not 2 <= ways <= len(pool):
        raise UsageError(f"ways must be in [2, {len(pool)}] for the {split} split, got {ways}")
    chosen = rng.choice(len(pool), size=ways, replace=False)
    return DigitsTask(tuple(int(pool[i]) for i in chosen))


def model_dir(use_case: str = "digits") -> Path:
    """Where the exported model lives: ``$TINYFLEET_MODEL_DIR`` or
    ``~/.cache/tinyfleet/models/<use_case>/``."""
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tinyfleet" / "models" / use_case


def load_backbone(directory: Path | None = None, export_if_missing: bool = True) -> CachedEmbedder:
    """The exported int8 backbone wrapped in a cache over all digit images.

    Exports it first (TensorFlow, ~20 s) when the directory has none, or one made by an
    older export recipe (``pretraining.recipe`` in the card).
    """
    from tinyfleet.device.backbone import Int8Backbone
    from tinyfleet.device.embedding_cache import CachedEmbedder
    from tinyfleet.device.tooling.modelcard import read_model_card
    from tinyfleet.simulations.export import export_use_case, recipe_tag

    directory = model_dir() if directory is None else Path(directory)
    card_path = directory / "model_card.json"
    card = read_model_card(card_path) if card_path.is_file() else None
    stale = card is not None and (card.get("pretraining") or {}).get("recipe") != recipe_tag(
        "digits"
    )
    if card is None or stale:
        if not export_if_missing:
            raise UsageError(f"no current digits model in {directory}; run tinyfleet export")
        reason = "an older recipe's" if stale else "no"
        print(
            f"tinyfleet: exporting the digits backbone to {directory} ({reason} export "
            "there; one-time, TensorFlow)",
            file=sys.stderr,
        )
        card = export_use_case("digits", directory)
    backbone = Int8Backbone.from_file(
        directory / str(card["tflite_file"]), arena_bytes=int(card["arena_bytes"])
    )
    return CachedEmbedder(backbone, np.asarray(all_images()))


@register_use_case("digits")
def digits_use_case() -> UseCase:
    return UseCase(
        name="digits",
        metric="accuracy",
        head_spec=DIGITS_HEAD,
        sample_task=sample_digits_task,
        make_backbone=load_backbone,
        defaults=dict(DIGITS_DEFAULTS),
    )
