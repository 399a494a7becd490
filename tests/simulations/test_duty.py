"""``simulate --duty-cycle``: with 90% of the devices asleep, async reaches sync's quality
in less simulated time."""

from __future__ import annotations

import json

import pytest

from tinyfleet.cli import main
from tinyfleet.simulations.duty import run_duty_cycle
from tinyfleet.simulations.runner import settings_for
from tinyfleet.simulations.usecase import get_use_case


def test_cli_writes_duty_cycle_report(tmp_path, capsys):
    out = tmp_path / "duty"
    argv = [
        "simulate",
        "sine",
        "--devices",
        "20",
        "--rounds",
        "60",
        "--duty-cycle",
        "60:6",
        "--strategies",
        "tinyreptile",
        "--eval-devices",
        "5",
        "--eval-points",
        "4",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    report = json.loads((out / "duty_cycle.json").read_text())
    assert report["asleep_fraction"] == pytest.approx(0.9)
    row = report["strategies"]["tinyreptile"]
    assert row["async"]["mode"] == "next-to-wake"
    assert row["async"]["sim_time_s"] < row["sync"]["sim_time_s"]
    assert "90% asleep" in capsys.readouterr().out


def test_same_seed_same_numbers():
    settings = settings_for(
        get_use_case("sine"),
        devices=10,
        rounds=20,
        seed=3,
        strategies=("tinyreptile",),
        eval_devices=3,
        eval_points=2,
    )
    a = run_duty_cycle(settings, 30.0, 3.0)
    b = run_duty_cycle(settings, 30.0, 3.0)
    assert a == b


@pytest.mark.slow
def test_async_reaches_sync_quality_sooner_with_90_percent_asleep():
    settings = settings_for(
        get_use_case("sine"),
        devices=100,
        rounds=1000,
        seed=0,
        strategies=("tinyreptile", "tinymetafed", "reptile", "fedavg"),
        eval_devices=20,
    )
    report = run_duty_cycle(settings, 60.0, 6.0)
    for name, row in report["strategies"].items():
        sync, fast = row["sync"]["time_to_target_s"], row["async"]["time_to_target_s"]
        assert fast is not None and fast < sync, name


def test_sync_run_is_the_strategy_as_simulate_runs_it():
    """The duty-cycle scenario runs each strategy with its own (tuned) settings: its sync
    run gives ``simulate``'s final parameters, and a one-device-per-round strategy
    (tuned Reptile) goes async by next-to-wake, a multi-device one (FedAvg) buffered."""
    from tinyfleet.simulations.runner import run

    settings = settings_for(
        get_use_case("sine"),
        devices=10,
        rounds=40,
        seed=1,
        strategies=("reptile", "fedavg"),
        eval_devices=3,
        eval_points=2,
    )
    assert settings.devices_per_round("reptile") == 1  # the saved tuned settings
    duty = run_duty_cycle(settings, 30.0, 3.0)
    plain = run(settings)
    for name in ("reptile", "fedavg"):
        sync = duty["strategies"][name]["sync"]
        assert sync["rounds"] == settings.rounds_for(name)
        assert sync["final_params_sha256"] == plain["strategies"][name]["final_params_sha256"]
    assert duty["strategies"]["reptile"]["async"]["mode"] == "next-to-wake"
    fedavg = duty["strategies"]["fedavg"]["async"]
    assert fedavg["mode"] == "buffered"
    assert fedavg["buffer_size"] == settings.devices_per_round("fedavg")
