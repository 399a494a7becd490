"""The Flower App's run config: kebab-case keys onto simulate's settings."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tinyfleet.errors import UsageError
from tinyfleet.simulations.flower_app import settings_from_run_config
from tinyfleet.simulations.settings import ALL_STRATEGIES

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_declares_the_app_and_its_config_is_valid():
    flwr = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]
    assert flwr["app"]["components"] == {
        "serverapp": "tinyfleet.simulations.flower_app:server_app",
        "clientapp": "tinyfleet.simulations.flower_app:client_app",
    }
    assert "federations" not in flwr  # Flower 1.42 would move them out of pyproject
    settings, use_case = settings_from_run_config(flwr["app"]["config"])
    assert use_case.name == "sine" and settings.rounds == flwr["app"]["config"]["rounds"]
    assert settings.strategies == ALL_STRATEGIES


def test_run_config_maps_and_defaults():
    settings, _ = settings_from_run_config(
        {
            "use-case": "sine",
            "strategy": "fedavg",
            "rounds": 7,
            "inner-lr": 0.05,
            "k": 0,
            "seed": 0,
            "out-dir": "",
            "sites": 2,
        }
    )
    assert settings.strategies == ("fedavg",)
    assert settings.rounds == 7 and settings.inner_lr == 0.05 and settings.k == 10


def test_unknown_key_is_refused():
    with pytest.raises(UsageError, match="not a tinyfleet setting"):
        settings_from_run_config({"rounds-per-day": 3})
