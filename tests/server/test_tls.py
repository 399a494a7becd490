"""TLS: a managed broker with a throwaway CA; gateway and device connect with mqtts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.device import wire
from tinyfleet.device.mqtt_client import DeviceSettings, MqttDevice
from tinyfleet.server.broker import ManagedBroker, TlsFiles
from tinyfleet.server.gateway import GatewaySettings, MqttGateway

pytestmark = pytest.mark.mqtt


def _make_certs(d: Path) -> TlsFiles:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tinyfleet-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return TlsFiles(str(d / "server.crt"), str(d / "server.key"), str(d / "ca.crt"))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_tls_round_trip(tmp_path: Path) -> None:
    tls = _make_certs(tmp_path)
    with ManagedBroker(tls=tls, anonymous=True) as broker:
        address = broker.address()
        assert address.url.startswith("mqtts://")

        def echo(task: wire.WireMessage):
            return {"loss": 0.5}, [wire.float32_array("0", task.arrays[0].to_float32() * 2)]

        device = MqttDevice(
            DeviceSettings(
                "tls-dev", address.host, address.port, fleet="tls", tls_ca=address.tls_ca
            ),
            echo,
        ).start()
        try:
            with MqttGateway(address, GatewaySettings(fleet="tls", round_timeout=5)) as gw:
                gw.wait_for_devices(["tls-dev"], 10)
                reply = gw.request(
                    "tls-dev",
                    round=1,
                    fields={},
                    arrays=[wire.float32_array("0", np.ones(3, np.float32))],
                )
        finally:
            device.stop()
    assert reply.arrays[0].values.tolist() == [2.0, 2.0, 2.0]
    assert reply.fields_dict() == {"loss": 0.5}
