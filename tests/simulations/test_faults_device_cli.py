"""Devices that do not die, and clear errors (issue 9 rows: --max-payload 40, unreachable
broker, refused password, empty --broker, --device-index -5, wrong gateway password)."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
from flwr.app import Message

from tinyfleet.device import wire
from tinyfleet.device.head import flatten, init_params
from tinyfleet.device.mqtt import BrokerAddress
from tinyfleet.device.mqtt_client import DeviceSettings
from tinyfleet.device.wire.contract import KEY_ROUND, RoundPlan
from tinyfleet.errors import UsageError
from tinyfleet.server.broker import GATEWAY_USER, ManagedBroker
from tinyfleet.server.gateway import GatewayError, GatewaySettings, MqttGateway
from tinyfleet.server.grid import client_app_call
from tinyfleet.server.run import quiet_flower, run_in_process
from tinyfleet.server.strategies import TinyReptile
from tinyfleet.simulations.clientapp import make_client_app
from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
from tinyfleet.simulations.seeding import device_task_rng
from tinyfleet.simulations.usecase import get_use_case

pytestmark = [pytest.mark.faults, pytest.mark.mqtt]
quiet_flower()
CLI = [sys.executable, "-m", "tinyfleet", "device", "run"]


def device_run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--device-id", "cli-0000", *args], capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", ""], "broker URL is empty"),
        (["--broker", "mqtt://"], "names no host"),
        (["--broker", "mqtt://:1883"], "names no host"),
        (["--broker", "mqtt://127.0.0.1:1883", "--device-index", "-5"], "--device-index"),
        (["--broker", "mqtt://127.0.0.1:1883", "--max-payload", "40"], "max payload 40"),
    ],
)
def test_invalid_settings_fail_at_start_with_one_line(args: list[str], message: str) -> None:
    done = device_run(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_unreachable_broker_exits_non_zero_saying_no_broker() -> None:
    port = free_port()
    done = device_run("--broker", f"mqtt://127.0.0.1:{port}", "--connect-timeout", "2")
    assert done.returncode == 2
    assert f"no broker at 127.0.0.1:{port} within 2 s" in done.stderr


def test_refused_password_exits_non_zero_saying_refused(auth_broker: ManagedBroker) -> None:
    url = f"mqtt://{auth_broker.host}:{auth_broker.port}"
    done = subprocess.run(
        [*CLI, "--device-id", "dev-a", "--device-index", "0", "--broker", url, "--password", "wrong",
         "--connect-timeout", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refused the login (user dev-a)" in done.stderr
    assert "Not authorized" in done.stderr or "Bad user name or password" in done.stderr


def test_password_from_environment(auth_broker: ManagedBroker) -> None:
    """The right password from $TINYFLEET_MQTT_PASSWORD connects (then SIGTERM stops it)."""
    import os
    import signal

    url = f"mqtt://{auth_broker.host}:{auth_broker.port}"
    env = dict(os.environ, TINYFLEET_MQTT_PASSWORD="pa")
    process = subprocess.Popen(
        [*CLI, "--device-id", "dev-a", "--device-index", "0", "--broker", url, "--connect-timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "connecting" in line
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=3)  # connected: it keeps running
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, process.stderr.read()  # type: ignore[union-attr]


def test_wrong_gateway_password_is_a_refused_login(auth_broker: ManagedBroker) -> None:
    address = BrokerAddress(auth_broker.host, auth_broker.port, GATEWAY_USER, "wrong")
    with pytest.raises(GatewayError, match="refused the login"):
        MqttGateway(address, GatewaySettings(fleet="gwpw")).start(wait=3)


def test_settings_refused_before_connecting() -> None:
    with pytest.raises(UsageError, match="too small"):
        DeviceSettings("d-0000", max_payload=40)
    with pytest.raises(UsageError):
        BrokerAddress.parse("   ")


SPEC = get_use_case("sine").head_spec
INITIAL = flatten(init_params(SPEC, np.random.default_rng(3)))
PLAN = RoundPlan("online", inner_lr=0.02, k=5)


def stream_for_device(seed: int, index: int):
    return get_use_case("sine").sample_task(device_task_rng(seed, index, "train"), "train")


def test_error_outside_the_handler_becomes_an_error_reply(
    broker: ManagedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Splitting the reply fails in round 2 (as --max-payload 40 did): the device reports
    an ERROR, its network thread lives, and it answers every later round."""
    real_split = wire.split_message

    def flaky(encoded: bytes, max_payload: int) -> list[bytes]:
        head = wire.peek_header(encoded)
        if head.msg_type == wire.MessageType.REPLY and head.round == 2:
            raise RuntimeError("cannot split")
        return real_split(encoded, max_payload)

    monkeypatch.setattr(wire, "split_message", flaky)
    devices, rounds = 2, 5
    with run_mqtt_fleet(
        SPEC, stream_for_device, devices, broker_url=f"mqtt://{broker.host}:{broker.port}",
        fleet="nodie", round_timeout=10,
    ) as fleet:  # fmt: skip
        strategy = TinyReptile(PLAN, num_devices=devices, seed=3, num_rounds=rounds)
        got, _ = run_in_process(strategy, fleet.client_call, devices, INITIAL, rounds)
        counters = fleet.counters()
    inner = client_app_call(make_client_app(SPEC, stream_for_device))

    def reference(message: Message) -> Message:
        if int(message.content["config"][KEY_ROUND]) == 2:  # type: ignore[index,arg-type]
            raise RuntimeError("fails")
        return inner(message)

    expected, _ = run_in_process(
        TinyReptile(PLAN, num_devices=devices, seed=3, num_rounds=rounds),
        reference, devices, INITIAL, rounds,
    )  # fmt: skip
    assert got.tobytes() == expected.tobytes()
    assert strategy.counters.accepted_replies == rounds - 1
    assert counters["device_errors"] == 1
