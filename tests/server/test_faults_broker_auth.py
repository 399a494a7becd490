"""Secure by default (issue 9): a managed broker refuses anonymous clients, generates a
password per device and for the gateway (owner-only file), pins client id = username, and
lets a device read only its own task topic."""

from __future__ import annotations

import stat
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tinyfleet.device.mqtt_client import DeviceSettings, MqttDevice
from tinyfleet.errors import TinyfleetError
from tinyfleet.server.broker import GATEWAY_USER, ManagedBroker

pytestmark = [pytest.mark.faults, pytest.mark.mqtt]
IDS = ["sec-0000", "sec-0001"]


@pytest.fixture(scope="module")
def secure() -> ManagedBroker:
    try:
        broker = ManagedBroker(device_ids=IDS).start()
    except Exception as error:  # noqa: BLE001
        pytest.skip(str(error))
    yield broker
    broker.close()


def client(broker: ManagedBroker, user: str | None, password: str | None, cid: str):
    got: list[bytes] = []
    result: dict[str, object] = {}
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
    if user is not None:
        c.username_pw_set(user, password)

    def on_connect(cl, ud, flags, reason, props) -> None:
        result["reason"] = reason
        ready.set()

    def on_disconnect(cl, ud, flags, reason, props) -> None:
        result["disconnected"] = result.get("disconnected", 0) + 1  # type: ignore[operator]

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    c.on_message = lambda cl, ud, m: got.append(m.payload)
    c.connect(broker.host, broker.port)
    c.loop_start()
    assert ready.wait(5)
    return c, got, result


def test_defaults_refuse_anonymous_and_write_owner_only_credentials(
    secure: ManagedBroker,
) -> None:
    config = secure.config_text()
    assert "allow_anonymous false" in config and "use_username_as_clientid true" in config
    assert "allow_anonymous true" not in config
    mode = stat.S_IMODE(secure.credentials_path.stat().st_mode)
    assert mode == 0o600
    lines = dict(line.split(":", 1) for line in secure.credentials_path.read_text().split())
    assert set(lines) == {GATEWAY_USER, *IDS} and len(set(lines.values())) == 3
    assert all(len(p) >= 20 for p in lines.values())
    c, _, result = client(secure, None, None, "anon")
    assert result["reason"].is_failure  # type: ignore[union-attr]
    c.loop_stop()
    with pytest.raises(TinyfleetError, match="refused the login"):
        MqttDevice(DeviceSettings("sec-0000", secure.host, secure.port,
                                  username="sec-0000", password="guess"),
                   lambda t: ({}, [])).start(wait=3)  # fmt: skip


def test_a_device_reads_only_its_own_task_topic(secure: ManagedBroker) -> None:
    users = secure.users or {}
    a, got_a, _ = client(secure, "sec-0000", users["sec-0000"], "sec-0000")
    b, got_b, _ = client(secure, "sec-0001", users["sec-0001"], "sec-0001")
    gw, _, _ = client(secure, GATEWAY_USER, users[GATEWAY_USER], "gw")
    try:
        a.subscribe("tinyfleet/f/sec-0001/task", qos=1)  # someone else's tasks
        a.subscribe("tinyfleet/#", qos=1)
        b.subscribe("tinyfleet/f/sec-0001/task", qos=1)
        time.sleep(0.5)
        gw.publish("tinyfleet/f/sec-0001/task", b"for b only", qos=1).wait_for_publish(5)
        time.sleep(1.0)
        assert got_b == [b"for b only"]
        assert got_a == []
    finally:
        for c in (a, b, gw):
            c.disconnect()
            c.loop_stop()


def test_credentials_cannot_take_another_devices_session(secure: ManagedBroker) -> None:
    """A's password with B's client id: the broker uses A's username as client id, so B's
    session is not kicked (it was, 23 times in 25 s, before)."""
    users = secure.users or {}
    b, _, b_state = client(secure, "sec-0001", users["sec-0001"], "sec-0001")
    a, _, a_state = client(secure, "sec-0000", users["sec-0000"], "sec-0001")
    try:
        assert not a_state["reason"].is_failure  # type: ignore[union-attr]
        time.sleep(1.5)
        assert "disconnected" not in b_state
    finally:
        for c in (a, b):
            c.disconnect()
            c.loop_stop()


def test_anonymous_is_an_explicit_opt_out() -> None:
    broker = ManagedBroker(anonymous=True)
    try:
        assert "allow_anonymous true" in broker.config_text()
        assert broker.users is None and not broker.generated
    finally:
        broker.close()
