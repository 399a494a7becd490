"""Suite-wide settings: tests never read or write the user's model cache."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The digits use case exports its backbone into $TINYFLEET_MODEL_DIR when it is absent;
    # a session-private directory keeps runs hermetic (no stale ~/.cache model).
    saved = os.environ.get("TINYFLEET_MODEL_DIR")
    os.environ["TINYFLEET_MODEL_DIR"] = str(tmp_path_factory.mktemp("models") / "digits")
    yield
    if saved is None:
        os.environ.pop("TINYFLEET_MODEL_DIR", None)
    else:
        os.environ["TINYFLEET_MODEL_DIR"] = saved
