"""`tinyfleet simulate --transport mqtt` gives the in-process report's parameters.

The runner (engineer B's simulations/runner.py) wires
:func:`tinyfleet.server.gateway_fleet.run_mqtt_fleet`; until it does, this test skips.
"""

from __future__ import annotations

import pytest

from tinyfleet.server.broker import ManagedBroker
from tinyfleet.server.run import TRANSPORTS

pytestmark = pytest.mark.mqtt


@pytest.mark.skipif("mqtt" not in TRANSPORTS, reason="simulate has no mqtt transport yet")
def test_simulate_mqtt_equals_inproc(broker: ManagedBroker) -> None:
    from tinyfleet.simulations.runner import run, settings_for
    from tinyfleet.simulations.usecase import get_use_case

    use_case = get_use_case("sine")
    common = dict(
        devices=4,
        rounds=6,
        seed=3,
        strategies=("tinyreptile", "reptile"),
        heldout_devices=2,
        eval_devices=1,
        eval_points=1,
        query_size=5,
        support_size=5,
        clients_per_round=2,
        baseline_rounds=2,
    )
    inproc = run(settings_for(use_case, transport="inproc", **common))
    extra = {"broker": f"mqtt://{broker.host}:{broker.port}"}
    try:
        mqtt = run(settings_for(use_case, transport="mqtt", **common, **extra))
    except Exception as error:  # noqa: BLE001 - runner without a broker setting
        if "broker" not in str(error):
            raise
        mqtt = run(settings_for(use_case, transport="mqtt", **common))
    for name in ("tinyreptile", "reptile"):
        assert (
            mqtt["strategies"][name]["final_params_sha256"]
            == inproc["strategies"][name]["final_params_sha256"]
        ), name
