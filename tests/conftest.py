"""Suite-wide fixtures: a private model cache and graph store, real Mosquitto brokers on
free loopback ports, and one tiny exported backbone (TensorFlow)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tinyfleet.errors import MissingToolError
from tinyfleet.server.broker import GATEWAY_USER, ManagedBroker


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The digits use case exports its backbone into $TINYFLEET_MODEL_DIR when it is absent;
    # a session-private directory keeps runs hermetic (no stale ~/.cache model).
    # Likewise `tinyfleet kg` without --store uses $TINYFLEET_KG_STORE, not ~/.tinyfleet/kg.
    private = {
        "TINYFLEET_MODEL_DIR": tmp_path_factory.mktemp("models") / "digits",
        "TINYFLEET_PRESENCE_MODEL_DIR": tmp_path_factory.mktemp("models") / "presence",
        "TINYFLEET_KG_STORE": tmp_path_factory.mktemp("kg") / "store",
        # kws: the generated corpus, MFCC caches and the exported backbone.
        "TINYFLEET_DATA_DIR": tmp_path_factory.mktemp("data"),
        "TINYFLEET_KWS_MODEL_DIR": tmp_path_factory.mktemp("models") / "kws",
    }
    saved = {name: os.environ.get(name) for name in private}
    os.environ.update({name: str(path) for name, path in private.items()})
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# -- MQTT: a real Debian Mosquitto on a free loopback port ------------------------------
def _start(**kwargs: object) -> ManagedBroker:
    try:
        return ManagedBroker(**kwargs).start()  # type: ignore[arg-type]
    except MissingToolError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def broker() -> Iterator[ManagedBroker]:
    """Anonymous broker shared by the session (tests use distinct fleets / device ids);
    protocol tests only: a managed broker has authentication on by default."""
    b = _start(anonymous=True)
    yield b
    b.close()


@pytest.fixture()
def own_broker() -> Iterator[ManagedBroker]:
    """An anonymous broker for one test (it may be restarted or killed)."""
    b = _start(anonymous=True)
    yield b
    b.close()


@pytest.fixture(scope="session")
def auth_broker() -> Iterator[ManagedBroker]:
    """Broker with per-device passwords and the topic ACL (docs/mosquitto.md)."""
    b = _start(users={GATEWAY_USER: "gw-secret", "dev-a": "pa", "dev-b": "pb"})
    yield b
    b.close()


# -- models -------------------------------------------------------------------------------
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
