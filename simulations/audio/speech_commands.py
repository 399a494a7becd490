"""A loader for the Google Speech Commands layout (Warden 2018, v0.02).

Layout::

    ROOT/WORD/SPEAKER_nohash_N.wav      16 kHz, mono, 16-bit PCM, <= 1 s
    ROOT/_background_noise_/*.wav       long noise recordings (any length, 16 kHz)

The speaker is the part of the file name before ``_nohash_``; ``N`` numbers a speaker's
utterances of a word. Other files (README, ``validation_list.txt``, ...) and folders
starting with ``_`` other than ``_background_noise_`` are ignored. Clips shorter than
1 s are zero-padded at the end (as the data set's own reference pipeline does); longer
ones are cut to their loudest second.

Bad input is the user's: a folder without this layout, an unreadable WAV, or one that is
not 16 kHz mono 16-bit raises :class:`~tinyfleet.errors.InputFileError` (one line; the
CLI exits 2).
"""

from __future__ import annotations

import hashlib
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyfleet.errors import InputFileError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE
NOISE_DIR = "_background_noise_"
CLIP_NAME = re.compile(r"^(?P<speaker>[A-Za-z0-9-]+)_nohash_(?P<n>\d+)\.wav$")

# The 35 words of Speech Commands v0.02.
WORDS: tuple[str, ...] = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on",
    "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up",
    "visual", "wow", "yes", "zero",
)  # fmt: skip


@dataclass(frozen=True)
class Clip:
    """One utterance: ``word`` (the folder), ``speaker`` (from the name), its index."""

    word: str
    speaker: str
    index: int
    path: Path


@dataclass(frozen=True)
class SpeechCommands:
    """The clips and noise files found under ``root`` (sorted: word, speaker, index)."""

    root: Path
    clips: tuple[Clip, ...]
    noise_files: tuple[Path, ...]

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(sorted({c.word for c in self.clips}))

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(sorted({c.speaker for c in self.clips}))

    def fingerprint(self) -> str:
        """Changes when any clip is added, removed or rewritten (names, sizes, mtimes)."""
        digest = hashlib.sha256()
        for clip in self.clips:
            stat = clip.path.stat()
            digest.update(
                f"{clip.word}/{clip.path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
            )
        return digest.hexdigest()


def scan(root: str | Path) -> SpeechCommands:
    """Index a Speech Commands folder; raise InputFileError if it has no such layout."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise InputFileError(f"--data-dir {base} is not a folder")
    clips: list[Clip] = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in sorted(folder.glob("*.wav")):
            match = CLIP_NAME.match(path.name)
            if match:
                clips.append(Clip(folder.name, match["speaker"], int(match["n"]), path))
    if not clips:
        raise InputFileError(
            f"--data-dir {base} has no Speech Commands layout: expected "
            "WORD/SPEAKER_nohash_N.wav files (16 kHz mono, 1 s)"
        )
    noise_dir = base / NOISE_DIR
    noise = tuple(sorted(noise_dir.glob("*.wav"))) if noise_dir.is_dir() else ()
    clips.sort(key=lambda c: (c.word, c.speaker, c.index))
    return SpeechCommands(base, tuple(clips), noise)


def read_wav(path: str | Path, header_only: bool = False) -> np.ndarray:
    """All samples of a 16 kHz mono 16-bit WAV file as int16 (``header_only``: check
    the format, return no samples)."""
    try:
        with wave.open(str(path), "rb") as handle:
            rate, channels, width = (
                handle.getframerate(),
                handle.getnchannels(),
                handle.getsampwidth(),
            )
            frames = b"" if header_only else handle.readframes(handle.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise InputFileError(f"cannot read WAV {path}: {error}") from None
    if rate != SAMPLE_RATE:
        raise InputFileError(f"WAV {path} is {rate} Hz; keyword audio must be {SAMPLE_RATE} Hz")
    if channels != 1 or width != 2:
        raise InputFileError(
            f"WAV {path} has {channels} channel(s) of {8 * width} bits; expected mono 16-bit"
        )
    return np.frombuffer(frames, dtype="<i2").astype(np.int16)


def fit_clip(samples: np.ndarray) -> np.ndarray:
    """Exactly 1 s: zero-pad at the end, or keep the loudest 1 s window."""
    samples = np.asarray(samples, dtype=np.int16)
    if len(samples) <= CLIP_SAMPLES:
        return np.pad(samples, (0, CLIP_SAMPLES - len(samples)))
    energy = np.cumsum(np.concatenate([[0.0], samples.astype(np.float64) ** 2]))
    window = energy[CLIP_SAMPLES:] - energy[:-CLIP_SAMPLES]
    start = int(np.argmax(window))
    return samples[start : start + CLIP_SAMPLES].copy()


def read_clip(path: str | Path) -> np.ndarray:
    """A clip as exactly :data:`CLIP_SAMPLES` int16 samples."""
    return fit_clip(read_wav(path))


def write_wav(path: str | Path, samples: np.ndarray) -> None:
    """Write int16 samples as a 16 kHz mono 16-bit WAV file."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(np.asarray(samples, dtype="<i2").tobytes())
