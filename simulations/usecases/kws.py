"""Keyword spotting: each device is a speaker that learns its own N keywords online.

Data: a Speech Commands folder (``--data-dir``) or, by default, the espeak-ng corpus
tinyfleet generates once (:mod:`tinyfleet.simulations.audio.corpus`: the 35 words, 40
speakers, 5 utterances each). Every clip goes through the device front end (CMSIS-DSP
q15 MFCC, 49 frames x 10 coefficients) and then the frozen int8 DS-CNN backbone.

Splits are FIXED (a permutation under :data:`SPLIT_SEED` of the sorted words and of the
sorted speakers, independent of the simulation seed) and disjoint in words AND speakers:

* ``pretrain``: 20 of 35 words x 50% of the speakers -- only ``tinyfleet export kws``
  sees them;
* ``train``: 8 words x 30% of the speakers -- the devices of federated rounds;
* ``heldout``: 7 words x 20% of the speakers -- few-shot evaluation only.

A device (:class:`KwsTask`) is one speaker of its split with its own ``ways`` (default
5) keywords from the split's words that this speaker has said, in its own label order.
It draws samples as digits devices do: a uniform label, then a random utterance of that
word by that speaker. Several devices may be the same speaker with other keywords.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.errors import InputFileError, UsageError
from tinyfleet.simulations.usecase import UseCase, register_use_case

if TYPE_CHECKING:
    from tinyfleet.device.embedding_cache import CachedEmbedder
    from tinyfleet.simulations.audio.dataset import KeywordData

SPLIT_SEED = 20240601
WAYS = 5
EMBEDDING_DIM = 32
MODEL_DIR_ENV = "TINYFLEET_KWS_MODEL_DIR"
SPLITS = ("pretrain", "train", "heldout")

KWS_HEAD = HeadSpec((EMBEDDING_DIM, 32, WAYS), "relu", "softmax_ce")

# Defaults for ``tinyfleet simulate kws`` (keys as for digits; tuning notes in
# docs/kws.md).
KWS_DEFAULTS: dict[str, object] = {
    "devices": 100,
    "rounds": 2000,
    "inner_lr": 0.05,
    "k": 10,
    "beta0": 0.3,
    "support_size": 50,
    "epochs": 1,
    "batch_size": 10,
    "baseline_inner_lr": 0.2,
    "clients_per_round": 5,
    "shots": 10,
    "adapt_steps": 10,
    "adapt_lr": 0.05,
    "query_size": 100,
    "heldout_devices": 50,
    "ways": WAYS,
}


def _split_sizes(n: int, fractions: tuple[float, float], minimum: int) -> tuple[int, int, int]:
    train = max(minimum, round(n * fractions[0]))
    heldout = max(minimum, round(n * fractions[1]))
    return n - train - heldout, train, heldout


@dataclass(frozen=True)
class KwsSplits:
    """The fixed word and speaker splits of one data set (indices into its lists)."""

    words: dict[str, tuple[int, ...]]
    speakers: dict[str, tuple[int, ...]]


def make_splits(num_words: int, num_speakers: int, ways: int = WAYS) -> KwsSplits:
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for kind, n, fractions, minimum in (
        ("words", num_words, (8 / 35, 0.2), ways),
        ("speakers", num_speakers, (0.3, 0.2), 1),
    ):
        sizes = _split_sizes(n, fractions, minimum)
        if sizes[0] < (2 if kind == "words" else 1):
            raise InputFileError(
                f"the keyword data has {n} {kind}; {ways}-way tasks on disjoint pretrain/"
                f"train/heldout {kind} need at least {sum(sizes) - sizes[0] + 2}"
            )
        order = np.random.default_rng([SPLIT_SEED, len(out)]).permutation(n)
        start, parts = 0, {}
        for name, size in zip(SPLITS, sizes, strict=True):
            parts[name] = tuple(sorted(int(i) for i in order[start : start + size]))
            start += size
        out[kind] = parts
    return KwsSplits(out["words"], out["speakers"])


class KwsData:
    """A data set with its splits and the clip rows of every (speaker, word)."""

    def __init__(self, data: KeywordData, ways: int = WAYS) -> None:
        self.data = data
        self.ways = ways
        self.splits = make_splits(len(data.words), len(data.speakers), ways)
        self._rows: dict[tuple[int, int], np.ndarray] = {}
        order = np.lexsort((data.word_of, data.speaker_of))
        keys = np.stack([data.speaker_of[order], data.word_of[order]], axis=1)
        bounds = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
        for chunk in np.split(order, bounds):
            if len(chunk):
                rows = np.sort(chunk)
                rows.setflags(write=False)
                self._rows[(int(data.speaker_of[rows[0]]), int(data.word_of[rows[0]]))] = rows
        self.eligible: dict[str, tuple[tuple[int, tuple[int, ...]], ...]] = {}
        for split in ("train", "heldout"):
            words = self.splits.words[split]
            people = []
            for s in self.splits.speakers[split]:
                said = tuple(w for w in words if (s, w) in self._rows)
                if len(said) >= ways:
                    people.append((s, said))
            if not people:
                raise InputFileError(
                    f"no {split} speaker of {data.source} has said {ways} of the {split} words"
                )
            self.eligible[split] = tuple(people)

    def rows(self, speaker: int, word: int) -> np.ndarray:
        return self._rows[(speaker, word)]

    def split_rows(self, split: str) -> np.ndarray:
        """Clips of the split's speakers saying the split's words."""
        words, people = set(self.splits.words[split]), set(self.splits.speakers[split])
        return np.array(
            [i for (s, w), rows in self._rows.items() if s in people and w in words for i in rows],
            dtype=np.int64,
        )

    def pretraining_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels ``0..`` of pre-training speakers saying pre-training words."""
        rows = np.sort(self.split_rows("pretrain"))
        words = self.splits.words["pretrain"]
        relabel = {w: i for i, w in enumerate(words)}
        labels = np.array([relabel[int(w)] for w in self.data.word_of[rows]], dtype=np.int64)
        return self.data.features(rows), labels

    def describe(self) -> dict[str, Any]:
        """The data source and its splits (for the model card)."""
        d = self.data
        return {
            "source": d.source,
            "fingerprint": d.fingerprint,
            "clips": len(d.word_of),
            "words": {k: [d.words[i] for i in v] for k, v in self.splits.words.items()},
            "speakers": {k: len(v) for k, v in self.splits.speakers.items()},
        }


@cache
def kws_data(data_dir: str | None = None) -> KwsData:
    from tinyfleet.simulations.audio.dataset import load_keyword_data

    return KwsData(load_keyword_data(data_dir))


@dataclass(frozen=True)
class KwsTask:
    """One device: speaker ``speaker`` with keywords ``words`` (device label i = words[i])."""

    speaker: int
    words: tuple[int, ...]
    rows: tuple[np.ndarray, ...]
    features: Any  # callable ids -> float features
    audio: Any = None  # callable ids -> int16 (n, 16000) raw windows

    @property
    def ways(self) -> int:
        return len(self.words)

    def sample_ids(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if n < 0:
            raise UsageError(f"cannot sample {n} clips")
        labels = rng.integers(0, self.ways, size=int(n))
        picks = rng.random(int(n))
        ids = np.array(
            [
                self.rows[int(lab)][int(u * len(self.rows[int(lab)]))]
                for lab, u in zip(labels, picks, strict=True)
            ],
            dtype=np.int64,
        )
        return ids, labels.astype(np.int64)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        ids, labels = self.sample_ids(n, rng)
        return self.features(ids), labels

    def sample_audio(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The same draws as :meth:`sample`, as raw 1 s int16 windows (the serial bridge
        feeds them to firmware that computes the features itself)."""
        if self.audio is None:
            raise UsageError("this keyword task has no raw audio")
        ids, labels = self.sample_ids(n, rng)
        return self.audio(ids), labels


def sample_kws_task(data: KwsData, rng: np.random.Generator, split: str) -> KwsTask:
    """A device of ``split``; ``validation`` devices (what ``--tune`` selects on) are new
    tasks over the TRAIN speakers and words, never a test speaker or word (as for digits)."""
    if split not in ("train", "heldout", "validation"):
        raise UsageError(f"unknown split {split!r}; expected 'train', 'heldout' or 'validation'")
    people = data.eligible["train" if split == "validation" else split]
    speaker, said = people[int(rng.integers(0, len(people)))]
    chosen = rng.choice(len(said), size=data.ways, replace=False)
    words = tuple(int(said[i]) for i in chosen)
    rows = tuple(data.rows(speaker, w) for w in words)
    audio = data.data.clips if data.data.paths else None
    return KwsTask(speaker, words, rows, data.data.features, audio)


def model_dir(data: KwsData | None = None, data_dir: str | None = None) -> Path:
    """``$TINYFLEET_KWS_MODEL_DIR`` or ``~/.cache/tinyfleet/models/kws`` (a user's
    ``--data-dir`` gets its own ``kws-data-<fingerprint>`` beside it)."""
    env = os.environ.get(MODEL_DIR_ENV)
    base = (
        Path(env).expanduser() if env else Path.home() / ".cache" / "tinyfleet" / "models" / "kws"
    )
    if data_dir is None or data is None:
        return base
    return base.parent / f"{base.name}-data-{data.data.fingerprint}"


def load_backbone(data_dir: str | None = None, directory: Path | None = None) -> CachedEmbedder:
    """The exported int8 backbone, cached over the train and held-out clips; exported
    first (TensorFlow) when missing, stale, or made from other data."""
    from tinyfleet.device.backbone import Int8Backbone
    from tinyfleet.device.embedding_cache import CachedEmbedder
    from tinyfleet.device.tooling.modelcard import read_model_card
    from tinyfleet.simulations.export import export_use_case, recipe_tag

    data = kws_data(data_dir)
    directory = model_dir(data, data_dir) if directory is None else Path(directory)
    card_path = directory / "model_card.json"
    card = read_model_card(card_path) if card_path.is_file() else None
    pre = (card or {}).get("pretraining") or {}
    current = (
        pre.get("recipe") == recipe_tag("kws")
        and (pre.get("data") or {}).get("fingerprint") == data.data.fingerprint
    )
    if card is None or not current:
        print(f"tinyfleet: exporting the kws backbone to {directory} (one-time, TensorFlow)",
              file=sys.stderr)  # fmt: skip
        card = export_use_case("kws", directory, data_dir=data_dir)
    backbone = Int8Backbone.from_file(
        directory / str(card["tflite_file"]), arena_bytes=int(card["arena_bytes"])
    )
    rows = np.sort(np.concatenate([data.split_rows("train"), data.split_rows("heldout")]))
    return CachedEmbedder(backbone, data.data.features(rows))


@register_use_case("kws")
def kws_use_case(data_dir: str | None = None) -> UseCase:
    key = None if data_dir is None else str(Path(data_dir).expanduser().resolve())

    def sample_task(rng: np.random.Generator, split: str) -> KwsTask:
        return sample_kws_task(kws_data(key), rng, split)

    return UseCase(
        name="kws",
        metric="accuracy",
        head_spec=KWS_HEAD,
        sample_task=sample_task,
        make_backbone=lambda: load_backbone(key),
        defaults=dict(KWS_DEFAULTS),
    )
