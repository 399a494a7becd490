"""``tinyfleet simulate``: a whole tiny run is deterministic, fair, and bad input fails cleanly."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tinyfleet.cli import main
from tinyfleet.simulations.runner import run, settings_for
from tinyfleet.simulations.usecase import get_use_case

TINY = [
    "--devices", "20", "--rounds", "75", "--heldout-devices", "5", "--query-size", "20",
    "--eval-points", "3", "--eval-devices", "3", "--no-progress", "--untuned",
]  # fmt: skip


@pytest.fixture(scope="module")
def two_reports(tmp_path_factory):
    reports = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(name)
        assert main(["simulate", "sine", *TINY, "--seed", "3", "--out", str(out)]) == 0
        reports.append((out, json.loads((out / "report.json").read_text())))
    return reports


def _strip_wall(report):
    return {
        **report,
        "strategies": {
            n: {k: v for k, v in s.items() if k != "wall_s"}
            for n, s in report["strategies"].items()
        },
    }


def test_report_has_the_issue_fields_and_plots(two_reports):
    out, report = two_reports[0]
    assert report["use_case"] == "sine" and report["seed"] == 3 and report["metric"] == "mse"
    assert set(report["strategies"]) == {
        "tinyreptile",
        "tinymetafed",
        "reptile",
        "fedavg",
        "scratch",
    }
    for row in report["strategies"].values():
        for key in (
            "fewshot",
            "device_ram_bytes",
            "device_grad_evals_per_round",
            "grad_evals_total",
            "bytes_up_per_device_round",
            "bytes_down_per_device_round",
            "devices_per_round",
            "fewshot_mean",
            "fewshot_std",
            "fewshot_per_seed",
            "diverged",
            "wall_s",
            "final_params_sha256",
            "adaptation_curve",
        ):
            assert key in row
        assert np.isfinite(row["fewshot"]) and len(row["adaptation_curve"]) == 11
    for name in ("report.md", "learning_curve.png", "adaptation_curve.png", "pareto.png"):
        assert (out / name).stat().st_size > 0
    assert "| tinyreptile |" in (out / "report.md").read_text()


def test_whole_simulation_is_deterministic(two_reports):
    (_, a), (_, b) = two_reports
    assert _strip_wall(a) == _strip_wall(b)
    assert (
        a["strategies"]["tinyreptile"]["final_params_sha256"]
        != (a["strategies"]["scratch"]["final_params_sha256"])
    )


def test_equal_compute_and_resources(two_reports):
    report = two_reports[0][1]
    rows = report["strategies"]
    totals = [
        rows[n]["grad_evals_total"] for n in ("tinyreptile", "tinymetafed", "reptile", "fedavg")
    ]
    assert totals[0] == 75 * 10 and max(totals) / min(totals) <= 1.10
    assert rows["tinyreptile"]["device_grad_evals_per_round"] == 10
    assert rows["reptile"]["device_grad_evals_per_round"] == 50
    assert rows["tinyreptile"]["device_ram_bytes"] < rows["reptile"]["device_ram_bytes"]
    # Bytes are the encoded wire messages: the dense float32 head plus the header, fields
    # and array head; TinyMetaFed's sparse int8 update is a tenth of that or less.
    dense = rows["tinyreptile"]["bytes_up_per_device_round"]
    assert 1761 * 4 < dense < 1761 * 4 + 512
    assert rows["reptile"]["bytes_up_per_device_round"] == dense
    assert rows["tinymetafed"]["bytes_up_per_device_round"] <= 0.1 * dense
    assert rows["tinymetafed"]["bytes_down_per_device_round"] > 1761 * 4
    assert report["comparison"]["equal_compute_within_10pct"] is True
    assert report["comparison"]["diverged"] == []
    assert rows["scratch"]["grad_evals_total"] == 0


def test_tinyreptile_beats_scratch_on_a_short_run():
    settings = settings_for(
        get_use_case("sine"),
        devices=50,
        rounds=1500,
        strategies=("tinyreptile", "scratch"),
        heldout_devices=20,
        query_size=50,
        eval_points=1,
    )
    rows = run(settings)["strategies"]
    assert rows["tinyreptile"]["fewshot"] < 0.6 * rows["scratch"]["fewshot"]


def test_several_seeds_report_mean_spread_and_per_seed(tmp_path):
    out = tmp_path / "seeds"
    argv = ["simulate", "sine", *TINY, "--seeds", "0,1", "--strategies", "tinyreptile,scratch"]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["seeds"] == [0, 1]
    row = report["strategies"]["tinyreptile"]
    assert len(row["fewshot_per_seed"]) == 2
    assert row["fewshot_mean"] == pytest.approx(np.mean(row["fewshot_per_seed"]))
    assert row["fewshot_std"] == pytest.approx(np.std(row["fewshot_per_seed"], ddof=1))
    assert len(set(row["final_params_sha256_per_seed"])) == 2
    assert "±" in (out / "report.md").read_text()


def test_a_run_whose_replies_all_diverge_is_marked(tmp_path, capsys):
    out = tmp_path / "nan"
    argv = ["simulate", "sine", *TINY, "--strategies", "tinyreptile", "--inner-lr", "50"]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["strategies"]["tinyreptile"]["diverged"] is True
    assert report["comparison"]["diverged"] == ["tinyreptile"]
    assert "tinyreptile diverged" in capsys.readouterr().err


def test_validation_devices_are_their_own_split():
    from tinyfleet.simulations.fleet import Fleet

    use_case = get_use_case("sine")
    fleet = Fleet(use_case, None)
    tasks = {
        split: [fleet.task(0, i, split) for i in range(5)]
        for split in ("train", "heldout", "validation")
    }
    signatures = {split: {(t.amplitude, t.phase) for t in ts} for split, ts in tasks.items()}
    assert not signatures["validation"] & (signatures["train"] | signatures["heldout"])
    val = fleet.heldout_episodes(0, 2, 3, 4, split="validation")
    test = fleet.heldout_episodes(0, 2, 3, 4)
    assert not np.array_equal(val[0].shots_x, test[0].shots_x)


def test_tuned_settings_are_per_strategy_and_keep_the_budget():
    from tinyfleet.simulations.settings import SimulationSettings

    settings = SimulationSettings(
        "sine",
        devices=10,
        rounds=100,
        per_strategy={
            "fedavg": {"clients_per_round": 5, "support_size": 10, "batch_size": 1, "lr": 0.03},
            "reptile": {"clients_per_round": 1, "support_size": 10, "epochs": 5, "beta0": 0.5},
        },
    )
    assert settings.budget == 1000
    assert settings.rounds_for("fedavg") == 20 and settings.rounds_for("reptile") == 20
    assert settings.plan_for("fedavg").inner_lr == 0.03
    assert settings.for_strategy("reptile").reptile_beta0 == 0.5
    assert settings.rounds_for("tinyreptile") == 100
    with pytest.raises(Exception, match="unknown"):
        SimulationSettings("sine", devices=1, rounds=1, per_strategy={"fedavg": {"magic": 1}})


@pytest.mark.parametrize(
    "argv,message",
    [
        (["simulate", "nosuch"], "unknown use case 'nosuch'"),
        (["simulate", "sine", "--devices", "0"], "--devices must be >= 1"),
        (["simulate", "sine", "--shots", "5000"], "--shots 5000 is more than"),
        (["simulate", "sine", "--strategies", "tinyreptile,magic"], "unknown strategy 'magic'"),
        (["simulate", "sine", "--rounds", "-3"], "--rounds must be >= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, message, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tinyfleet", *argv, "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyfleet: error:"), done.stderr
    assert message in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_digits_simulation_runs_on_the_int8_backbone(tmp_path):
    """The digits use case end to end (exports the backbone first when none is cached)."""
    argv = ["simulate", "digits", "--devices", "20", "--rounds", "50", "--heldout-devices", "5"]
    argv += ["--query-size", "20", "--eval-points", "2", "--eval-devices", "2", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["metric"] == "accuracy"
    rows = report["strategies"]
    assert all(0.0 <= row["fewshot"] <= 1.0 for row in rows.values())
    # The backbone's tensor arena is part of every learning device's RAM.
    assert rows["tinyreptile"]["device_ram_bytes"] > 4 * 1221
    assert rows["tinyreptile"]["device_grad_evals_per_round"] == 10
