"""The kws use case: word and speaker splits, device tasks, and `simulate kws` end to
end on a small espeak-ng corpus in the Speech Commands layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.errors import InputFileError
from tinyfleet.simulations.audio.dataset import KeywordData
from tinyfleet.simulations.audio.speech_commands import WORDS
from tinyfleet.simulations.usecases import kws


def synthetic(num_words: int = 35, num_speakers: int = 40, reps: int = 3) -> KeywordData:
    """Every speaker says every word ``reps`` times; feature = (speaker, word, take)."""
    rows = [(s, w, r) for w in range(num_words) for s in range(num_speakers) for r in range(reps)]
    speaker_of = np.array([s for s, _, _ in rows], np.int32)
    word_of = np.array([w for _, w, _ in rows], np.int32)
    features = np.zeros((len(rows), 49, 10), np.int16)
    features[:, 0, 0], features[:, 0, 1], features[:, 0, 2] = (
        speaker_of,
        word_of,
        [r for *_, r in rows],
    )
    return KeywordData(
        "synthetic", "f" * 16, tuple(WORDS[:num_words]),
        tuple(f"sp{i}" for i in range(num_speakers)), word_of, speaker_of, features,
    )  # fmt: skip


def test_splits_are_disjoint_in_words_and_speakers() -> None:
    data = kws.KwsData(synthetic())
    words, people = data.splits.words, data.splits.speakers
    assert {k: len(v) for k, v in words.items()} == {"pretrain": 20, "train": 8, "heldout": 7}
    assert {k: len(v) for k, v in people.items()} == {"pretrain": 20, "train": 12, "heldout": 8}
    for split in (words, people):
        a, b, c = (set(split[k]) for k in kws.SPLITS)
        assert not (a & b or a & c or b & c)
    x, y = data.pretraining_data()
    x = np.round(x * 128)  # features are q8.7 / 128
    assert x.shape == (20 * 20 * 3, 49, 10, 1) and set(np.unique(y)) == set(range(20))
    assert set(x[:, 0, 0, 0].astype(int)) == set(people["pretrain"])
    assert set(x[:, 0, 1, 0].astype(int)) == set(words["pretrain"])
    # Splits are fixed: independent of anything but the data's size.
    assert kws.make_splits(35, 40) == data.splits


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_a_device_is_one_speaker_with_its_own_keywords(split: str) -> None:
    data = kws.KwsData(synthetic())
    rng = np.random.default_rng(0)
    tasks = [kws.sample_kws_task(data, rng, split) for _ in range(30)]
    assert len({(t.speaker, t.words) for t in tasks}) > 25
    task = tasks[0]
    assert task.ways == 5 and set(task.words) <= set(data.splits.words[split])
    assert task.speaker in data.splits.speakers[split]
    x, y = task.sample(300, np.random.default_rng(1))
    x = np.round(x * 128)  # features are q8.7 / 128
    assert x.shape == (300, 49, 10, 1) and set(np.unique(y)) == set(range(5))
    assert set(x[:, 0, 0, 0].astype(int)) == {task.speaker}
    np.testing.assert_array_equal(x[:, 0, 1, 0].astype(int), np.array(task.words)[y])
    assert len(set(x[:, 0, 2, 0].astype(int))) == 3  # every take of a word is drawn


def test_too_few_words_or_speakers() -> None:
    with pytest.raises(InputFileError, match="words"):
        kws.KwsData(synthetic(num_words=8))
    sparse = synthetic()
    # Nobody in the held-out split said five held-out words.
    keep = ~np.isin(sparse.word_of, kws.make_splits(35, 40).words["heldout"][:3])
    thin = KeywordData(
        sparse.source, sparse.fingerprint, sparse.words, sparse.speakers,
        sparse.word_of[keep], sparse.speaker_of[keep], sparse.features_q[keep],
    )  # fmt: skip
    with pytest.raises(InputFileError, match="heldout speaker"):
        kws.KwsData(thin)


@pytest.mark.tf
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_simulate_kws_end_to_end_on_a_small_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow")
    from tinyfleet.cli import main
    from tinyfleet.simulations.audio.corpus import CorpusSpec, generate

    monkeypatch.setenv("TINYFLEET_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TINYFLEET_KWS_MODEL_DIR", str(tmp_path / "models" / "kws"))
    words = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "one", "two")
    root = generate(tmp_path / "corpus", CorpusSpec(speakers=5, reps=2, words=words), quiet=True)
    out = tmp_path / "report"
    argv = [
        "simulate", "kws", "--data-dir", str(root), "--out", str(out), "--no-progress",
        "--devices", "4", "--rounds", "20", "--heldout-devices", "3", "--query-size", "20",
        "--eval-points", "2", "--eval-devices", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["use_case"] == "kws" and report["metric"] == "accuracy"
    assert set(report["strategies"]) == {"tinyreptile", "tinymetafed", "reptile", "fedavg", "scratch"}
    for row in report["strategies"].values():
        assert 0.0 <= row["fewshot"] <= 1.0
    assert report["head"]["layer_sizes"] == [32, 32, 5]
    # The backbone was exported for THIS data set, on words and speakers no device has.
    cards = list((tmp_path / "models").glob("kws-data-*/model_card.json"))
    assert len(cards) == 1
    card = json.loads(cards[0].read_text())
    assert set(card["operators"]) == {
        "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
    }  # fmt: skip
    split_words = card["pretraining"]["data"]["words"]
    assert {len(v) for v in split_words.values()} == {2, 5}
    assert not set(split_words["pretrain"]) & (
        set(split_words["train"]) | set(split_words["heldout"])
    )
    assert card["pretraining"]["data"]["speakers"] == {"pretrain": 2, "train": 2, "heldout": 1}
    # The device path from a raw WAV (front end -> int8 backbone) is what the simulator
    # used: same q15 features, and the backbone's cache answers for them.
    from tinyfleet.device.frontend import MfccFrontend
    from tinyfleet.simulations.audio.speech_commands import read_clip, scan

    key = str(root.resolve())
    data = kws.kws_data(key)
    row = int(data.split_rows("heldout")[0])
    features = MfccFrontend().features(read_clip(scan(root).clips[row].path))
    np.testing.assert_array_equal(features, data.data.features([row])[0])
    backbone = kws.load_backbone(key)
    hits = backbone.hits
    np.testing.assert_array_equal(backbone.embed(features), backbone.backbone.embed(features))
    assert backbone.hits == hits + 1


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_kws_defaults_meet_the_targets() -> None:
    """`simulate kws` with defaults (generates the corpus and exports the backbone in the
    session's private cache: ~5 min): 5-way few-shot accuracy after 10 online steps on
    held-out speakers and words, well above chance (0.2) and above scratch."""
    from tinyfleet.simulations.runner import run, settings_for
    from tinyfleet.simulations.usecase import get_use_case

    use_case = get_use_case("kws")
    report = run(settings_for(use_case))
    s = report["strategies"]
    assert s["tinyreptile"]["fewshot"] > 0.5
    assert s["tinyreptile"]["fewshot"] > s["scratch"]["fewshot"] + 0.05
    assert s["fedavg"]["fewshot"] > s["scratch"]["fewshot"]
    assert report["comparison"]["equal_compute_within_10pct"]
