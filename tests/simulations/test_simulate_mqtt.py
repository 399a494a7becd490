"""`tinyfleet simulate --transport mqtt` gives the in-process report's parameters."""

from __future__ import annotations

import pytest

from tinyfleet.server.broker import ManagedBroker

pytestmark = pytest.mark.mqtt


def test_simulate_mqtt_equals_inproc(broker: ManagedBroker) -> None:
    from tinyfleet.simulations.runner import run, settings_for
    from tinyfleet.simulations.usecase import get_use_case

    use_case = get_use_case("sine")
    common = dict(
        devices=4,
        rounds=6,
        seed=3,
        strategies=("tinyreptile", "tinymetafed", "reptile"),
        heldout_devices=2,
        eval_devices=1,
        eval_points=1,
        query_size=5,
        support_size=5,
        clients_per_round=2,
        baseline_rounds=2,
    )
    common["tuned"] = False
    inproc = run(settings_for(use_case, transport="inproc", **common))
    extra = {"broker": f"mqtt://{broker.host}:{broker.port}"}
    mqtt = run(settings_for(use_case, transport="mqtt", **common, **extra))
    for name in ("tinyreptile", "tinymetafed", "reptile"):
        assert (
            mqtt["strategies"][name]["final_params_sha256"]
            == inproc["strategies"][name]["final_params_sha256"]
        ), name
        # The bytes MQTT carried (encoded messages) are what the in-process run computes.
        for key in ("bytes_up_per_device_round", "bytes_down_per_device_round"):
            assert mqtt["strategies"][name][key] == inproc["strategies"][name][key], (name, key)


def test_simulate_mqtt_cli_starts_its_own_broker(tmp_path) -> None:
    """Without --broker the CLI starts and stops Mosquitto itself; same numbers as inproc."""
    import json

    from tinyfleet.cli import main

    reports = {}
    for transport in ("inproc", "mqtt"):
        out = tmp_path / transport
        argv = [
            "simulate",
            "sine",
            "--transport",
            transport,
            "--devices",
            "3",
            "--rounds",
            "5",
            "--strategies",
            "tinyreptile",
            "--heldout-devices",
            "2",
            "--query-size",
            "5",
            "--eval-points",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        reports[transport] = json.loads((out / "report.json").read_text())
    inproc, mqtt = (reports[t]["strategies"]["tinyreptile"] for t in ("inproc", "mqtt"))
    assert mqtt["final_params_sha256"] == inproc["final_params_sha256"]
    assert mqtt["grad_evals_total"] == inproc["grad_evals_total"] == 5 * 10
