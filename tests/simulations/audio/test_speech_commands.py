"""The Speech Commands loader on small folders in that layout, and its bad-input errors."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.cli import main
from tinyfleet.errors import InputFileError
from tinyfleet.simulations.audio import speech_commands as sc


def tone(freq: float, seconds: float = 0.5, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def make_folder(root: Path) -> Path:
    for w, word in enumerate(("yes", "no", "up")):
        (root / word).mkdir(parents=True)
        for s, speaker in enumerate(("0a1b2c3d", "ffee0011")):
            for n in range(2):
                sc.write_wav(
                    root / word / f"{speaker}_nohash_{n}.wav", tone(300 + 100 * w + 7 * s + n)
                )
    (root / "_background_noise_").mkdir()
    sc.write_wav(root / "_background_noise_" / "white_noise.wav", tone(50, seconds=3.0))
    (root / "README.md").write_text("not a clip")
    (root / "yes" / "notes.txt").write_text("ignored")
    return root


def test_scan_finds_words_speakers_and_noise(tmp_path: Path) -> None:
    folder = sc.scan(make_folder(tmp_path / "sc"))
    assert folder.words == ("no", "up", "yes")
    assert folder.speakers == ("0a1b2c3d", "ffee0011")
    assert len(folder.clips) == 12
    assert [p.name for p in folder.noise_files] == ["white_noise.wav"]
    first = folder.clips[0]
    assert (first.word, first.speaker, first.index) == ("no", "0a1b2c3d", 0)
    assert first.path.name == "0a1b2c3d_nohash_0.wav"


def test_read_clip_pads_to_one_second_and_keeps_samples(tmp_path: Path) -> None:
    folder = sc.scan(make_folder(tmp_path / "sc"))
    clip = sc.read_clip(folder.clips[0].path)
    assert clip.shape == (16_000,) and clip.dtype == np.int16
    np.testing.assert_array_equal(clip[:8000], tone(400))  # "no" is word 1, speaker 0, n 0
    assert not clip[8000:].any()


def test_long_clips_keep_their_loudest_second() -> None:
    x = np.zeros(24_000, np.int16)
    x[10_000:12_000] = 1000
    out = sc.fit_clip(x)
    assert out.shape == (16_000,) and int(np.abs(out).sum()) == 2000 * 1000


def test_fingerprint_changes_when_a_clip_changes(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "sc")
    before = sc.scan(root).fingerprint()
    assert sc.scan(root).fingerprint() == before
    sc.write_wav(root / "up" / "ffee0011_nohash_5.wav", tone(900))
    assert sc.scan(root).fingerprint() != before


def test_folder_without_the_layout(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    sc.write_wav(tmp_path / "flat" / "yes.wav", tone(300))
    with pytest.raises(InputFileError, match="no Speech Commands layout"):
        sc.scan(tmp_path / "flat")
    with pytest.raises(InputFileError, match="not a folder"):
        sc.scan(tmp_path / "missing")


def test_wrong_rate_stereo_and_garbage_wavs(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(tone(300, rate=8000).tobytes())
    with pytest.raises(InputFileError, match="8000 Hz"):
        sc.read_wav(path)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(np.zeros(200, np.int16).tobytes())
    with pytest.raises(InputFileError, match="2 channel"):
        sc.read_wav(path)
    path.write_bytes(b"this is not a wav file at all")
    with pytest.raises(InputFileError, match="cannot read WAV"):
        sc.read_wav(path)


def _cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("bad", ["layout", "rate", "garbage"])
def test_simulate_kws_bad_data_dir_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("TINYFLEET_DATA_DIR", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "sc")
    if bad == "layout":
        root = tmp_path / "empty"
        root.mkdir()
    elif bad == "rate":
        with wave.open(str(root / "up" / "0a1b2c3d_nohash_0.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(44100)
            handle.writeframes(tone(300).tobytes())
    else:
        (root / "no" / "ffee0011_nohash_1.wav").write_bytes(b"RIFF....garbage")
    line = _cli_error(
        capsys, "simulate", "kws", "--data-dir", str(root), "--out", str(tmp_path / "o"),
        "--no-progress",
    )  # fmt: skip
    assert line.startswith("tinyfleet: error: ")
    expected = {
        "layout": "no Speech Commands layout",
        "rate": "44100 Hz",
        "garbage": "cannot read WAV",
    }
    assert expected[bad] in line
    assert not (tmp_path / "o").exists()  # nothing written
    assert not list((tmp_path / "cache").glob("features/*"))  # nothing cached


def test_data_dir_is_refused_by_use_cases_without_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _cli_error(capsys, "simulate", "sine", "--data-dir", str(tmp_path), "--no-progress")
    assert "has no real-data loader" in line
