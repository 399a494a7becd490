"""Fixtures for the MQTT tests: a real Debian Mosquitto on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tinyfleet.errors import MissingToolError
from tinyfleet.server.broker import GATEWAY_USER, ManagedBroker


def _start(**kwargs: object) -> ManagedBroker:
    try:
        return ManagedBroker(**kwargs).start()  # type: ignore[arg-type]
    except MissingToolError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def broker() -> Iterator[ManagedBroker]:
    """Anonymous broker shared by the session (tests use distinct fleets / device ids)."""
    b = _start()
    yield b
    b.close()


@pytest.fixture()
def own_broker() -> Iterator[ManagedBroker]:
    """A broker for one test (it may be restarted or killed)."""
    b = _start()
    yield b
    b.close()


@pytest.fixture(scope="session")
def auth_broker() -> Iterator[ManagedBroker]:
    """Broker with per-device passwords and the topic ACL (docs/mosquitto.md)."""
    b = _start(users={GATEWAY_USER: "gw-secret", "dev-a": "pa", "dev-b": "pb"})
    yield b
    b.close()
