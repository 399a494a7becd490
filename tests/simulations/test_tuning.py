"""The tuning protocol: picks on validation devices, caches trials, saves nothing unasked."""

from __future__ import annotations

import pytest

from tinyfleet.errors import UsageError
from tinyfleet.simulations import tuning
from tinyfleet.simulations.settings import settings_for
from tinyfleet.simulations.usecase import get_use_case


def test_tune_picks_the_best_validation_setting_and_caches(tmp_path, monkeypatch) -> None:
    grid = {
        "tinyreptile": [{"lr": 0.02, "beta0": 1.0}, {"lr": 0.0001, "beta0": 1.0}],
        "fedavg": [{"clients_per_round": 2, "support_size": 5, "batch_size": 1, "lr": 0.02}],
    }
    monkeypatch.setitem(tuning.GRIDS, "sine", grid)
    monkeypatch.setattr(tuning, "VALIDATION_DEVICES", 4)
    settings = settings_for(
        get_use_case("sine"),
        tuned=False,
        devices=10,
        rounds=60,
        query_size=10,
        strategies=("tinyreptile", "fedavg", "scratch"),
    )
    doc = tuning.tune(settings, cache_dir=tmp_path, save=False, log=lambda _: None)
    assert set(doc["per_strategy"]) == {"tinyreptile", "fedavg"}
    assert doc["per_strategy"]["tinyreptile"]["lr"] == 0.02  # lr 1e-4 barely learns
    assert tuning.adapt_lrs(settings) == (0.01, 0.02, 0.04)  # sine's 0.02 halved, doubled
    assert doc["per_strategy"]["tinyreptile"]["adapt_lr"] in tuning.adapt_lrs(settings)
    assert len(doc["trials"]["tinyreptile"]) == 2 * len(tuning.adapt_lrs(settings))
    assert doc["budget_grad_evals"] == 600
    # A second search trains nothing: every trial comes from the cache.
    monkeypatch.setattr(tuning, "_trial", lambda *a: pytest.fail("retrained"))
    again = tuning.tune(settings, cache_dir=tmp_path, save=False, log=lambda _: None)
    assert again["per_strategy"] == doc["per_strategy"]


def test_saved_tuned_settings_are_candidates_of_their_grid() -> None:
    """What a plain ``simulate`` runs was picked from the grid the docs describe."""
    for name in ("sine", "digits", "presence", "kws"):
        doc = tuning.load_tuned_doc(name)
        assert doc["use_case"] == name
        grid = tuning.GRIDS[name]
        assert set(doc["per_strategy"]) == set(grid)
        for strategy, chosen in doc["per_strategy"].items():
            candidate = {k: v for k, v in chosen.items() if k != "adapt_lr"}
            assert candidate in grid[strategy], (name, strategy)
            assert chosen["adapt_lr"] in {t["adapt_lr"] for t in doc["trials"][strategy]}


def test_presence_validation_rooms_are_their_own_split() -> None:
    import numpy as np

    from tinyfleet.simulations.seeding import device_task_rng

    use_case = get_use_case("presence")
    rooms = {
        split: use_case.sample_task(device_task_rng(0, 3, split), split)
        for split in ("train", "validation", "heldout")
    }
    assert not np.array_equal(rooms["validation"].x, rooms["heldout"].x)
    assert not np.array_equal(rooms["validation"].x, rooms["train"].x)
    with pytest.raises(UsageError, match="unknown split"):
        use_case.sample_task(device_task_rng(0, 3, "train"), "test")
