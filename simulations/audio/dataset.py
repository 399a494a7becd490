"""Keyword data for the simulator: every clip of a Speech Commands folder as q15 MFCCs.

:func:`load_keyword_data` scans a folder (the user's ``--data-dir``, or the espeak-ng
corpus generated on first use under ``$TINYFLEET_DATA_DIR``, default
``~/.cache/tinyfleet/data``), runs the device front end (:mod:`tinyfleet.device.frontend`,
CMSIS-DSP q15 MFCC) over every clip once and caches the features in
``DATA_ROOT/features/kws-<fingerprint>.npz`` (the fingerprint covers file names, sizes,
mtimes and the front end's parameters).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyfleet.device import frontend
from tinyfleet.errors import InputFileError
from tinyfleet.simulations.audio.corpus import CorpusSpec, generate
from tinyfleet.simulations.audio.speech_commands import read_clip, read_wav, scan

DATA_DIR_ENV = "TINYFLEET_DATA_DIR"
CORPUS_NAME = "kws-espeak"


def data_root() -> Path:
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tinyfleet" / "data"


def default_corpus(spec: CorpusSpec | None = None) -> Path:
    """The espeak-ng corpus, generated on first use."""
    spec = CorpusSpec() if spec is None else spec
    return generate(data_root() / f"{CORPUS_NAME}-v{spec.version}", spec)


@dataclass(frozen=True)
class KeywordData:
    """Clip ``i`` is ``words[word_of[i]]`` said by ``speakers[speaker_of[i]]``;
    ``features_q[i]`` its ``(49, 10)`` int16 q8.7 MFCCs."""

    source: str
    fingerprint: str
    words: tuple[str, ...]
    speakers: tuple[str, ...]
    word_of: np.ndarray
    speaker_of: np.ndarray
    features_q: np.ndarray
    #: the WAV file of every clip (raw audio for firmware with the front end)
    paths: tuple[str, ...] = ()

    def clips(self, ids: np.ndarray) -> np.ndarray:
        """Raw 1 s windows ``(n, 16000)`` int16 of clips ``ids``, read from their files
        (what a board's microphone hands its front end)."""
        if not self.paths:
            raise InputFileError(f"{self.source}: no clip files known (features only)")
        rows = np.asarray(ids).reshape(-1)
        out = np.empty((len(rows), frontend.CLIP_SAMPLES), np.int16)
        for i, row in enumerate(rows):
            out[i] = read_clip(self.paths[int(row)])
        return out

    def features(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Float32 backbone inputs ``(n, 49, 10, 1)`` (q8.7 / 128)."""
        q = self.features_q if ids is None else self.features_q[np.asarray(ids)]
        return (q.astype(np.float32) / (1 << frontend.MFCC_Q))[..., None]


def _frontend_tag() -> str:
    t = frontend.tables()
    digest = hashlib.sha256()
    for array in (t.window, t.filter_pos, t.filter_len, t.filter_coefs, t.dct):
        digest.update(array.tobytes())
    digest.update(f"{frontend.FFT_LEN},{frontend.HOP},{frontend.NUM_FRAMES}".encode())
    return digest.hexdigest()[:12]


def load_keyword_data(data_dir: str | Path | None = None, quiet: bool = False) -> KeywordData:
    """Features of every clip in ``data_dir`` (default: the espeak-ng corpus)."""
    root = Path(data_dir).expanduser() if data_dir is not None else default_corpus()
    folder = scan(root)
    fingerprint = hashlib.sha256(f"{folder.fingerprint()}:{_frontend_tag()}".encode()).hexdigest()[
        :16
    ]
    cache = data_root() / "features" / f"kws-{fingerprint}.npz"
    words, speakers = folder.words, folder.speakers
    word_of = np.array([words.index(c.word) for c in folder.clips], dtype=np.int32)
    speaker_of = np.array([speakers.index(c.speaker) for c in folder.clips], dtype=np.int32)
    features = None
    if cache.is_file():
        try:
            with np.load(cache) as stored:
                features = stored["features_q"]
        except (OSError, ValueError, KeyError):
            features = None
        if features is not None and features.shape[0] != len(folder.clips):
            features = None
    if features is None:
        for clip in folder.clips:  # bad files fail here, before any progress output
            read_wav(clip.path, header_only=True)
        if not quiet:
            print(
                f"tinyfleet: computing MFCCs of {len(folder.clips)} clips in {root} "
                "(CMSIS-DSP q15; cached)",
                file=sys.stderr,
            )
        mfcc = frontend.MfccFrontend()
        features = np.empty((len(folder.clips), frontend.NUM_FRAMES, frontend.NUM_MFCC), np.int16)
        for i, clip in enumerate(folder.clips):
            features[i] = mfcc.features_q(read_clip(clip.path))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, features_q=features)
        os.replace(tmp, cache)
    if len(words) < 2 or len(speakers) < 2:
        raise InputFileError(
            f"{root} has {len(words)} word(s) and {len(speakers)} speaker(s); keyword "
            "learning needs several of each"
        )
    features.setflags(write=False)
    paths = tuple(str(c.path) for c in folder.clips)
    return KeywordData(
        str(root), fingerprint, words, speakers, word_of, speaker_of, features, paths
    )
