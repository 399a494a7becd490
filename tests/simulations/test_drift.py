"""``tinyfleet drift``: drift streams, prequential scoring, recovery, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.cli import main
from tinyfleet.device.head import HeadSpec, MLPHead, flatten, init_params, unflatten
from tinyfleet.errors import UsageError
from tinyfleet.simulations import drift
from tinyfleet.simulations.drift_streams import drift_stream


def test_windowed_and_recovery_on_known_scores() -> None:
    np.testing.assert_allclose(drift.windowed(np.array([1.0, 0, 1, 1]), 2), [1, 0.5, 0.5, 1])
    # Accuracy 1 before the drift at 100, 0 for 30 samples after it, then 1 again.
    scores = np.ones((2, 300))
    scores[:, 100:130] = 0.0
    labelled = np.zeros((2, 300), dtype=bool)
    labelled[:, ::2] = True
    rows = drift.recovery(scores, labelled, (100, 200), window=10, metric="accuracy")
    first = rows[0]
    assert first["pre_drift"] == 1.0 and first["recovered"]
    # The first all-clean window after the drift ends at sample 139.
    assert first["samples_to_recover"] == 40 and first["labelled_to_recover"] == 20
    assert rows[1]["samples_to_recover"] == 10
    # Never recovering: the error stays.
    bad = scores.copy()
    bad[:, 200:] = 0.0
    assert drift.recovery(bad, labelled, (100, 200), 10, "accuracy")[1]["recovered"] is False


def test_prequential_tests_before_it_trains() -> None:
    spec = HeadSpec((2, 2), "relu", "softmax_ce")
    theta = flatten(init_params(spec, np.random.default_rng(0)))
    x = np.tile(np.array([[1.0, 0.0]], np.float32), (40, 1))
    y = np.ones(40, dtype=np.int64)
    head = MLPHead(spec, params=[p.copy() for p in unflatten(spec, theta)])
    first = float(int(np.argmax(head.forward(x[:1])[0])) == 1)
    everything = np.ones(40, dtype=bool)
    scores = drift.prequential(theta, spec, x, y, everything, 0.5, "accuracy")
    assert scores[0] == first  # scored with the untouched head
    assert scores[-10:].mean() == 1.0  # then it learned
    frozen = drift.prequential(theta, spec, x, y, everything, 0.5, "accuracy", freeze_at=0)
    assert np.all(frozen == first)
    reset = drift.prequential(theta, spec, x, y, everything, 0.5, "accuracy", reset_at=(20,))
    assert reset[20] == first


@pytest.mark.parametrize("use_case", ["sine", "digits", "presence"])
def test_drift_streams_shift_at_the_marked_points(use_case: str) -> None:
    stream = drift_stream(use_case, np.random.default_rng(4), 150)
    assert stream.drift_points == (150, 300, 450) and len(stream.x) == len(stream.y) == 600
    assert len(stream.drift_labels) == 3
    if use_case == "digits":
        # Same label, image turned by a quarter: segments differ, rot90 of each other.
        seg0, seg1 = stream.x[:150], stream.x[150:300]
        assert not np.array_equal(seg0.mean(axis=0), seg1.mean(axis=0))
    if use_case == "presence":
        co2 = stream.x[:, 3]
        # The aged CO2 sensor (+300 ppm, gain x0.8) reads higher (1 unit = 300 ppm).
        assert co2[150:300].mean() - co2[:150].mean() > 0.3


def test_drift_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="label-fraction"):
        drift.DriftSettings("sine", label_fraction=0.0)
    with pytest.raises(UsageError, match="no drift scenario"):
        drift_stream("kws", np.random.default_rng(0), 100)


def test_unknown_use_case_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drift", "nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no drift scenario" in err[0]
    assert not (tmp_path / "o").exists()


def test_presence_drift_static_breaks_online_learning_recovers(tmp_path: Path) -> None:
    out = tmp_path / "drift"
    argv = ["drift", "presence", "--out", str(out), "--devices", "4", "--meta-rounds", "200"]
    assert main(argv + ["--meta-devices", "40"]) == 0
    report = json.loads((out / "report.json").read_text())
    methods = report["methods"]
    static = methods["static"]["segment_mean"]
    # The sensor drift (first drift point) breaks the frozen model ...
    assert static[1] < static[0] - 0.08
    assert not any(row["static_back_to_commissioned_level"] for row in report["targets"])
    # ... while the devices that keep learning stay far better after every drift.
    for name in ("meta_online", "meta_reset", "scratch_online"):
        assert all(methods[name]["segment_mean"][i] > static[i] + 0.05 for i in (1, 2, 3))
    assert all(row["recovered"] for row in methods["meta_reset"]["recovery"])
    assert (out / "drift_curve.png").stat().st_size > 10_000
    assert "meta_reset" in (out / "report.md").read_text()


def test_sine_drift_report(tmp_path: Path) -> None:
    out = tmp_path / "drift"
    argv = ["drift", "sine", "--out", str(out), "--devices", "20", "--meta-rounds", "500"]
    assert main(argv + ["--segment-length", "200", "--meta-devices", "100"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["drift_points"] == [200, 400, 600] and report["metric"] == "nmse"
    methods = report["methods"]
    # The frozen model's error after the first amplitude/phase step is far above the
    # online learners (nmse: lower is better).
    assert methods["static"]["segment_mean"][1] > 1.5 * methods["meta_reset"]["segment_mean"][1]
    assert len(methods["meta_online"]["curve"]) == 800
