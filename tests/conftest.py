"""Suite-wide settings: tests never read or write the user's model cache or graph store."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The digits use case exports its backbone into $TINYFLEET_MODEL_DIR when it is absent;
    # a session-private directory keeps runs hermetic (no stale ~/.cache model).
    # Likewise `tinyfleet kg` without --store uses $TINYFLEET_KG_STORE, not ~/.tinyfleet/kg.
    private = {
        "TINYFLEET_MODEL_DIR": tmp_path_factory.mktemp("models") / "digits",
        "TINYFLEET_KG_STORE": tmp_path_factory.mktemp("kg") / "store",
    }
    saved = {name: os.environ.get(name) for name in private}
    os.environ.update({name: str(path) for name, path in private.items()})
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
