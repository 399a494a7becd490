"""The espeak-ng corpus: Speech Commands layout, speakers that differ, determinism,
and its MFCC cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.simulations.audio import corpus, dataset
from tinyfleet.simulations.audio import speech_commands as sc

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

SMALL = corpus.CorpusSpec(speakers=3, reps=2, words=("yes", "no", "seven"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus.generate(tmp_path_factory.mktemp("c") / "kws", SMALL, quiet=True)


def test_layout_and_format(small: Path) -> None:
    folder = sc.scan(small)
    assert folder.words == ("no", "seven", "yes")
    assert len(folder.speakers) == 3 and len(folder.clips) == 3 * 2 * 3
    assert {p.name for p in folder.noise_files} == {
        "white_noise.wav", "pink_noise.wav", "brown_noise.wav",
    }  # fmt: skip
    for clip in folder.clips:
        samples = sc.read_wav(clip.path)  # raises unless 16 kHz mono 16-bit
        assert samples.shape == (16_000,)
        assert np.abs(samples).max() > 1000  # a word, not silence
    assert json.loads((small / "corpus.json").read_text())["speakers"] == 3


def test_words_are_spoken_and_speakers_differ(small: Path) -> None:
    folder = sc.scan(small)
    clip = {(c.word, c.speaker, c.index): sc.read_wav(c.path) for c in folder.clips}
    a, b = folder.speakers[:2]

    # "seven" (two syllables) lasts longer than "yes" for the same speaker and take.
    def voiced(x: np.ndarray) -> int:
        env = np.convolve(np.abs(x.astype(float)), np.ones(160) / 160, "same")
        return int((env > 0.1 * env.max()).sum())

    assert voiced(clip[("seven", a, 0)]) > voiced(clip[("yes", a, 0)])
    assert not np.array_equal(clip[("yes", a, 0)], clip[("yes", b, 0)])
    assert not np.array_equal(clip[("yes", a, 0)], clip[("yes", a, 1)])  # takes differ


def test_generation_is_deterministic_and_cached(small: Path, tmp_path: Path) -> None:
    again = corpus.generate(tmp_path / "again", SMALL, quiet=True)
    for clip in sc.scan(small).clips:
        assert (again / clip.word / clip.path.name).read_bytes() == clip.path.read_bytes()
    stamp = (again / "corpus.json").stat().st_mtime_ns
    corpus.generate(again, SMALL, quiet=True)  # finished: nothing rewritten
    assert (again / "corpus.json").stat().st_mtime_ns == stamp


def test_mfcc_cache(small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYFLEET_DATA_DIR", str(tmp_path))
    data = dataset.load_keyword_data(small, quiet=True)
    assert data.features_q.shape == (18, 49, 10)
    assert data.words == ("no", "seven", "yes")
    assert [data.words[w] for w in data.word_of[:6]] == ["no"] * 6
    assert len(list((tmp_path / "features").glob("kws-*.npz"))) == 1
    again = dataset.load_keyword_data(small, quiet=True)
    np.testing.assert_array_equal(again.features_q, data.features_q)
    assert again.fingerprint == data.fingerprint
    assert data.features().shape == (18, 49, 10, 1)
