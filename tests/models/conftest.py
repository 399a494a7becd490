"""Shared fixture: one tiny digits backbone, exported once per test session (TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """``(directory, model card)`` of the 'tiny' backbone pre-trained 1 epoch on digits."""
    pytest.importorskip("tensorflow")
    from tinyfleet.simulations.export import export_use_case

    out = tmp_path_factory.mktemp("tiny_model")
    card = export_use_case("digits", out, seed=0, epochs=1, backbone="tiny")
    return out, card


@pytest.fixture(scope="session")
def tiny_bytes(tiny_export: tuple[Path, dict[str, Any]]) -> bytes:
    return (tiny_export[0] / "backbone.tflite").read_bytes()
