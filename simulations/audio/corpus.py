"""The embedded keyword corpus: Speech Commands' 35 words spoken by espeak-ng.

Written once, in the Speech Commands layout (``WORD/SPEAKER_nohash_N.wav``, 16 kHz mono
16-bit, 1 s, plus ``_background_noise_/``), so the loader that reads the real data set
reads it too. A *speaker* is a fixed espeak-ng voice (English accents and other
languages' voices reading English), a voice variant (``+m1`` .. ``+f5``, ...), a base
pitch and a base speed. Each of a speaker's ``reps`` takes jitters pitch, speed and
loudness around the speaker's own (one espeak-ng call speaks all words with long pauses,
cut apart at the silences), then places each word at a random time in the second and
adds background noise at a random SNR. Everything follows from ``seed``: the same
arguments give the same files.

A finished corpus has ``corpus.json`` (its parameters); generation writes into a
temporary folder and renames it, so an interrupted run leaves no half corpus.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinyfleet.errors import MissingToolError
from tinyfleet.simulations.audio.speech_commands import (
    CLIP_SAMPLES,
    NOISE_DIR,
    SAMPLE_RATE,
    WORDS,
    write_wav,
)

CORPUS_VERSION = 1
ESPEAK_RATE = 22_050
# Voices that speak English words with distinct accents (espeak-ng 1.51, Debian).
VOICES = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc", "de", "fr", "es", "it", "nl", "pl", "sv", "pt",
)  # fmt: skip
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "croak", "whisper",
)  # fmt: skip
PAUSE_MS = 700
MIN_GAP_S = 0.3


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate (recorded in ``corpus.json``)."""

    speakers: int = 40
    reps: int = 5
    words: tuple[str, ...] = WORDS
    seed: int = 0
    snr_db: tuple[float, float] = (10.0, 30.0)
    version: int = CORPUS_VERSION

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["words"] = list(self.words)
        data["snr_db"] = list(self.snr_db)
        return data


@dataclass(frozen=True)
class Speaker:
    name: str
    voice: str
    variant: str
    pitch: int
    speed: int


def speakers(spec: CorpusSpec) -> list[Speaker]:
    """The corpus' speakers: voices and variants interleaved, pitch/speed from the seed."""
    rng = np.random.default_rng([spec.seed, 1])
    out = []
    for i in range(spec.speakers):
        voice = VOICES[i % len(VOICES)]
        variant = VARIANTS[(i * 5 + i // len(VOICES)) % len(VARIANTS)]
        pitch = int(rng.integers(25, 76))
        speed = int(rng.integers(130, 186))
        out.append(Speaker(f"es{i:03d}-{voice}-{variant}", voice, variant, pitch, speed))
    return out


def _espeak(text: str, voice: str, pitch: int, speed: int, amplitude: int) -> np.ndarray:
    """espeak-ng's 22.05 kHz int16 samples of ``text`` (SSML)."""
    try:
        result = subprocess.run(
            ["espeak-ng", "-m", "-v", voice, "-p", str(pitch), "-s", str(speed),
             "-a", str(amplitude), "--stdout", text],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
    except FileNotFoundError:
        raise MissingToolError(
            "generating the keyword corpus needs espeak-ng (apt-get install espeak-ng), "
            "or give --data-dir a Speech Commands folder"
        ) from None
    data = result.stdout
    if data[:4] != b"RIFF" or len(data) <= 44:
        raise MissingToolError(f"espeak-ng gave no WAV for voice {voice}")
    return np.frombuffer(data[44 : 44 + (len(data) - 44) // 2 * 2], dtype="<i2")


def _segments(samples: np.ndarray) -> list[np.ndarray]:
    """Cut a recording of words separated by long pauses at its silences."""
    x = np.abs(samples.astype(np.float64))
    if not x.any():
        return []
    envelope = np.convolve(x, np.ones(220) / 220, mode="same")
    active = envelope > 0.02 * envelope.max()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2]
    merged: list[list[int]] = []
    for start, end in zip(starts, ends, strict=True):
        if merged and start - merged[-1][1] < MIN_GAP_S * ESPEAK_RATE:
            merged[-1][1] = int(end)
        else:
            merged.append([int(start), int(end)])
    pad = int(0.02 * ESPEAK_RATE)
    return [samples[max(0, s - pad) : e + pad] for s, e in merged]


def _resample(samples: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(samples.astype(np.float64), SAMPLE_RATE, ESPEAK_RATE)


def _speak_words(
    words: tuple[str, ...], voice: str, pitch: int, speed: int, amp: int
) -> list[np.ndarray]:
    """Each word as float 16 kHz samples: one espeak-ng call, else one call per word."""
    pause = f'<break time="{PAUSE_MS}ms"/>'
    text = "<speak>" + pause.join(words) + "</speak>"
    parts = _segments(_espeak(text, voice, pitch, speed, amp))
    if len(parts) != len(words):
        parts = []
        for word in words:
            pieces = _segments(_espeak(word, voice, pitch, speed, amp))
            parts.append(np.concatenate(pieces) if pieces else np.zeros(1, np.int16))
    return [_resample(p) for p in parts]


def noise_tracks(seed: int, seconds: int = 10) -> dict[str, np.ndarray]:
    """White, pink and brown noise (float, unit RMS), as Speech Commands ships noise."""
    rng = np.random.default_rng([seed, 2])
    n = seconds * SAMPLE_RATE
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 1.0)
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(1601) / 1601, mode="same")
    return {
        name: track / np.sqrt(np.mean(track**2))
        for name, track in (("white_noise", white), ("pink_noise", pink), ("brown_noise", brown))
    }


def _place(
    word: np.ndarray, noise: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float]
) -> np.ndarray:
    """The word at a random offset in 1 s, plus noise at a random SNR; int16."""
    if len(word) > CLIP_SAMPLES:
        cut = (len(word) - CLIP_SAMPLES) // 2
        word = word[cut : cut + CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES)
    offset = int(rng.integers(0, CLIP_SAMPLES - len(word) + 1))
    clip[offset : offset + len(word)] = word
    speech_rms = float(np.sqrt(np.mean(word**2))) if len(word) else 0.0
    snr = float(rng.uniform(*snr_db))
    start = int(rng.integers(0, len(noise) - CLIP_SAMPLES + 1))
    clip += noise[start : start + CLIP_SAMPLES] * speech_rms * 10 ** (-snr / 20)
    return np.clip(np.round(clip), -32768, 32767).astype(np.int16)


def _speaker_clips(
    spec: CorpusSpec, index: int, speaker: Speaker, noise: list[np.ndarray]
) -> list[tuple[str, int, np.ndarray]]:
    rng = np.random.default_rng([spec.seed, 3, index])
    out = []
    for rep in range(spec.reps):
        pitch = int(np.clip(speaker.pitch + rng.integers(-8, 9), 0, 99))
        speed = int(speaker.speed * rng.uniform(0.9, 1.1))
        amplitude = int(rng.integers(80, 181))
        voice = f"{speaker.voice}+{speaker.variant}"
        for word, samples in zip(
            spec.words, _speak_words(spec.words, voice, pitch, speed, amplitude), strict=True
        ):
            track = noise[int(rng.integers(0, len(noise)))]
            out.append((word, rep, _place(samples, track, rng, spec.snr_db)))
    return out


def is_complete(root: Path, spec: CorpusSpec) -> bool:
    meta = root / "corpus.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()) == spec.to_json()
    except ValueError:
        return False


def generate(
    root: str | Path, spec: CorpusSpec = CorpusSpec(), workers: int = 2, quiet: bool = False
) -> Path:
    """Write the corpus to ``root`` unless a finished one with ``spec`` is there."""
    root = Path(root).expanduser()
    if is_complete(root, spec):
        return root
    if shutil.which("espeak-ng") is None:
        _espeak("", "en", 50, 160, 100)  # raises MissingToolError
    if not quiet:
        clips = spec.speakers * spec.reps * len(spec.words)
        print(f"tinyfleet: generating the keyword corpus ({clips} clips, espeak-ng) in {root}; "
              "one-time", file=sys.stderr)  # fmt: skip
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        tracks = noise_tracks(spec.seed)
        (tmp / NOISE_DIR).mkdir()
        for name, track in tracks.items():
            write_wav(tmp / NOISE_DIR / f"{name}.wav", np.round(track * 3000).astype(np.int16))
        for word in spec.words:
            (tmp / word).mkdir()
        noise = list(tracks.values())
        people = speakers(spec)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            jobs = [pool.submit(_speaker_clips, spec, i, s, noise) for i, s in enumerate(people)]
            for speaker, job in zip(people, jobs, strict=True):
                for word, rep, clip in job.result():
                    write_wav(tmp / word / f"{speaker.name}_nohash_{rep}.wav", clip)
        (tmp / "corpus.json").write_text(json.dumps(spec.to_json(), indent=1))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
