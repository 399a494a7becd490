"""Read an Omniglot folder (Lake et al. 2015) in its published layout.

Layout: ``DIR/images_background/ALPHABET/characterNN/*.png`` (30 alphabets) and
``DIR/images_evaluation/ALPHABET/characterNN/*.png`` (20 alphabets); each PNG is one
drawer's 105x105 binary image of the character (black strokes on white), 20 drawers
per character. ``DIR`` may also be a folder holding the two unzipped archives one
level down (``DIR/images_background/images_background/...``).

Each image is inverted (ink = 1), area-averaged down to the backbone's input size
(default 8x8, the digits backbone) and scaled so its brightest pixel is 1, like the
8x8 digits the backbone was pre-trained on.

Wrong layout (no ``images_background``/``images_evaluation``, an alphabet without
character folders, a character without PNGs, an unreadable PNG) raises
:class:`~tinyfleet.errors.InputFileError` with one line, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyfleet.errors import InputFileError

SPLITS = {"train": "images_background", "heldout": "images_evaluation"}
MIN_CHARACTERS = 2
MIN_DRAWERS = 2


@dataclass(frozen=True)
class Alphabet:
    """One alphabet: ``images`` ``(n, h, w, 1)`` float32 and the ``character`` index
    (0-based, within the alphabet) of each image."""

    name: str
    images: np.ndarray
    character: np.ndarray

    @property
    def num_characters(self) -> int:
        return int(self.character.max()) + 1


def _split_root(data_dir: Path, folder: str) -> Path:
    nested = data_dir / folder / folder
    root = nested if nested.is_dir() else data_dir / folder
    if not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
        raise InputFileError(
            f"{data_dir}: not an Omniglot folder: expected {folder}/ALPHABET/characterNN/"
            "*.png (images_background and images_evaluation)"
        )
    return root


def load_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """One PNG as ink in [0, 1], area-averaged to ``size`` (rows, cols), max scaled to 1."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            gray = image.convert("L")
    except (OSError, UnidentifiedImageError) as error:
        raise InputFileError(f"{path}: not a readable PNG image: {error}") from None
    small = gray.resize((size[1], size[0]), Image.Resampling.BOX)
    ink = 1.0 - np.asarray(small, dtype=np.float32) / 255.0
    peak = float(ink.max())
    return ink / peak if peak > 0 else ink


def load_alphabet(folder: Path, size: tuple[int, int]) -> Alphabet:
    characters = sorted(p for p in folder.iterdir() if p.is_dir())
    if len(characters) < MIN_CHARACTERS:
        raise InputFileError(
            f"{folder}: an alphabet needs >= {MIN_CHARACTERS} characterNN folders, "
            f"found {len(characters)}"
        )
    images, labels = [], []
    for index, character in enumerate(characters):
        pngs = sorted(character.glob("*.png"))
        if len(pngs) < MIN_DRAWERS:
            raise InputFileError(
                f"{character}: a character needs >= {MIN_DRAWERS} PNG drawings, found {len(pngs)}"
            )
        for png in pngs:
            images.append(load_image(png, size))
            labels.append(index)
    return Alphabet(
        folder.name, np.asarray(images, np.float32)[..., None], np.asarray(labels, np.int64)
    )


def load_omniglot(
    data_dir: Path, size: tuple[int, int] = (8, 8)
) -> dict[str, tuple[Alphabet, ...]]:
    """``{"train": background alphabets, "heldout": evaluation alphabets}``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputFileError(f"{data_dir}: not a folder (Omniglot: images_background, ...)")
    out: dict[str, tuple[Alphabet, ...]] = {}
    for split, folder in SPLITS.items():
        root = _split_root(data_dir, folder)
        alphabets = sorted(p for p in root.iterdir() if p.is_dir())
        out[split] = tuple(load_alphabet(a, size) for a in alphabets)
    return out
