"""Digits use case: disjoint class splits, tasks, rotations, cached backbone loading."""

from __future__ import annotations

import numpy as np
import pytest

from tinyfleet.errors import UsageError
from tinyfleet.simulations.usecase import get_use_case
from tinyfleet.simulations.usecases import digits


def test_class_splits_are_disjoint_and_cover_all_classes() -> None:
    splits = digits.class_splits()
    sets = {name: set(classes) for name, classes in splits.items()}
    assert {name: len(s) for name, s in sets.items()} == {"pretrain": 20, "train": 12, "heldout": 8}
    assert not sets["pretrain"] & sets["train"]
    assert not sets["pretrain"] & sets["heldout"]
    assert not sets["train"] & sets["heldout"]
    assert sets["pretrain"] | sets["train"] | sets["heldout"] == set(range(40))


def test_pretraining_data_uses_only_pretrain_classes() -> None:
    x, y = digits.pretraining_data()
    pretrain = set(digits.class_splits()["pretrain"])
    expected = int(np.isin(digits.all_classes(), list(pretrain)).sum())
    assert len(x) == len(y) == expected
    assert set(np.unique(y)) == set(range(20))


def test_rotations_are_classes() -> None:
    images, classes = digits.all_images(), digits.all_classes()
    n = len(images) // 4
    assert images.shape == (4 * n, 8, 8, 1) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images[n + 5, :, :, 0], np.rot90(images[5, :, :, 0]))
    assert classes[n + 5] == classes[5] + 1


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_tasks_sample_their_own_classes(split: str) -> None:
    rng = np.random.default_rng(0)
    task = digits.sample_digits_task(rng, split)
    assert task.ways == 5 and set(task.classes) <= set(digits.class_splits()[split])
    x, y = task.sample(200, np.random.default_rng(1))
    assert x.shape == (200, 8, 8, 1) and x.dtype == np.float32
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(5))
    ids, y2 = task.sample_ids(200, np.random.default_rng(1))
    np.testing.assert_array_equal(x, digits.all_images()[ids])
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(digits.all_classes()[ids], np.array(task.classes)[y])


def test_devices_get_different_label_orders() -> None:
    rng = np.random.default_rng(0)
    tasks = {digits.sample_digits_task(rng, "train").classes for _ in range(20)}
    assert len(tasks) > 15


def test_bad_task_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(UsageError):
        digits.sample_digits_task(rng, "pretrain")
    with pytest.raises(UsageError):
        digits.sample_digits_task(rng, "heldout", ways=9)
    with pytest.raises(UsageError):
        digits.DigitsTask((1, 1, 2))


def test_use_case_registration() -> None:
    use_case = get_use_case("digits")
    assert use_case.metric == "accuracy"
    assert use_case.head_spec.layer_sizes == (32, 32, 5)
    assert {"inner_lr", "k", "shots", "adapt_steps", "beta0"} <= set(use_case.defaults)


@pytest.mark.tf
def test_make_backbone_loads_exported_model(tiny_export, monkeypatch) -> None:
    directory, card = tiny_export
    monkeypatch.setenv(digits.MODEL_DIR_ENV, str(directory))
    embedder = get_use_case("digits").make_backbone()
    assert embedder is not None
    assert embedder.arena_bytes == card["arena_bytes"]  # type: ignore[attr-defined]
    x, _ = digits.sample_digits_task(np.random.default_rng(0), "train").sample(
        5, np.random.default_rng(0)
    )
    assert embedder.embed(x).shape == (5, 8)


@pytest.mark.tf
def test_stale_export_is_not_used(tiny_export, tmp_path) -> None:
    import json
    import shutil

    directory, card = tiny_export
    shutil.copy(directory / "backbone.tflite", tmp_path / "backbone.tflite")
    old = dict(card, pretraining=dict(card["pretraining"], recipe="digits-v1"))
    (tmp_path / "model_card.json").write_text(json.dumps(old))
    with pytest.raises(UsageError, match="no current digits model"):
        digits.load_backbone(tmp_path, export_if_missing=False)
    assert digits.load_backbone(directory, export_if_missing=False).embedding_dim == 8
