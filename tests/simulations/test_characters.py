"""Omniglot layout loader and the ``characters`` use case, on a set drawn here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tinyfleet.cli import main
from tinyfleet.errors import InputFileError
from tinyfleet.simulations.loaders import omniglot
from tinyfleet.simulations.usecase import get_use_case
from tinyfleet.simulations.usecases.characters import AlphabetTask


def _draw_omniglot(root: Path, alphabets: dict[str, int], drawers: int = 6) -> Path:
    """A small Omniglot-layout set: each character is a few random strokes; each drawer
    draws it a bit shifted and with its own pen width (105x105, binary, black on white)."""
    rng = np.random.default_rng(11)
    for split, count in alphabets.items():
        for a in range(count):
            for c in range(1, 7):
                strokes = rng.uniform(15, 90, size=(3, 4))
                folder = root / split / f"Alphabet_{split[7:]}_{a}" / f"character{c:02d}"
                folder.mkdir(parents=True)
                for d in range(drawers):
                    image = Image.new("1", (105, 105), 1)
                    pen = ImageDraw.Draw(image)
                    dx, dy = rng.integers(-6, 7, size=2)
                    for x0, y0, x1, y1 in strokes:
                        pen.line(
                            [(x0 + dx, y0 + dy), (x1 + dx, y1 + dy)],
                            fill=0,
                            width=int(rng.integers(3, 7)),
                        )
                    image.save(folder / f"{c:02d}{a:02d}_{d + 1:02d}.png")
    return root


@pytest.fixture(scope="module")
def omniglot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("omniglot")
    return _draw_omniglot(root, {"images_background": 3, "images_evaluation": 2})


def test_loader_reads_the_layout_and_resizes(omniglot_dir: Path) -> None:
    splits = omniglot.load_omniglot(omniglot_dir)
    assert [len(splits[s]) for s in ("train", "heldout")] == [3, 2]
    alphabet = splits["heldout"][0]
    assert alphabet.images.shape == (36, 8, 8, 1) and alphabet.num_characters == 6
    assert alphabet.images.min() >= 0.0 and alphabet.images.max() == 1.0
    # Ink is bright (as in the digits): most of a white page stays 0.
    assert (alphabet.images < 0.05).mean() > 0.3
    with Image.open(next((omniglot_dir / "images_background").rglob("*.png"))) as png:
        assert png.size == (105, 105)


def test_devices_are_alphabets_and_heldout_alphabets_are_unseen(omniglot_dir: Path) -> None:
    use_case = get_use_case("characters", data_dir=omniglot_dir)
    rng = np.random.default_rng(0)
    train = {use_case.sample_task(rng, "train").alphabet.name for _ in range(30)}  # type: ignore[attr-defined]
    held = {use_case.sample_task(rng, "heldout").alphabet.name for _ in range(30)}  # type: ignore[attr-defined]
    assert train and held and not train & held
    task = use_case.sample_task(rng, "heldout")
    assert isinstance(task, AlphabetTask) and len(set(task.characters)) == 5
    x, y = task.sample(50, np.random.default_rng(1))
    assert x.shape == (50, 8, 8, 1) and set(np.unique(y)) <= set(range(5))


def test_embedded_default_is_rotated_digits() -> None:
    use_case = get_use_case("characters")
    assert use_case.name == "characters"
    task = use_case.sample_task(np.random.default_rng(0), "train")
    assert task.sample(3, np.random.default_rng(0))[0].shape == (3, 8, 8, 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: (root / "images_background").mkdir(), "not an Omniglot folder"),
        (
            lambda root: (root / "alphabets" / "a" / "character01").mkdir(parents=True),
            "images_background",
        ),
        (
            lambda root: (
                _draw_omniglot(root, {"images_background": 1})
                .joinpath("images_evaluation", "Greek", "character01")
                .mkdir(parents=True)
            ),
            "needs >= 2 characterNN folders",
        ),
    ],
)
def test_wrong_layout_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    make(root)  # type: ignore[operator]
    with pytest.raises(InputFileError, match=message):
        omniglot.load_omniglot(root)
    out = tmp_path / "report"
    assert main(["simulate", "characters", "--data-dir", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_broken_png_is_one_line(tmp_path: Path) -> None:
    root = _draw_omniglot(tmp_path / "o", {"images_background": 1, "images_evaluation": 1})
    victim = next((root / "images_evaluation").rglob("*.png"))
    victim.write_bytes(b"not a png")
    with pytest.raises(InputFileError, match="not a readable PNG"):
        omniglot.load_omniglot(root)


def test_simulate_characters_on_omniglot(omniglot_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    argv = ["simulate", "characters", "--data-dir", str(omniglot_dir), "--out", str(out)]
    argv += ["--rounds", "200", "--devices", "30", "--heldout-devices", "10", "--no-progress"]
    assert main(argv + ["--strategies", "tinyreptile,scratch"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["use_case"] == "characters"
    rows = report["strategies"]
    # Held-out alphabets, 5-way: learning from 10 shots beats chance (0.2).
    assert rows["tinyreptile"]["fewshot"] > 0.3 and rows["scratch"]["fewshot"] > 0.25
