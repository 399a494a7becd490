"""``simulate --firmware-report``: device time and energy per round from a real firmware report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyfleet.cli import main
from tinyfleet.firmware.toolchain import missing_tools
from tinyfleet.simulations.device_cost import NRF52840_HZ
from tinyfleet.simulations.usecase import get_use_case

TINY = [
    "--devices", "20", "--rounds", "30", "--heldout-devices", "5", "--query-size", "20",
    "--eval-points", "3", "--eval-devices", "3", "--no-progress", "--untuned",
]  # fmt: skip


@pytest.fixture(scope="module")
def sine_firmware_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tinyfleet firmware report --json`` of the sine head, measured in QEMU."""
    missing = missing_tools("qemu-mps2-an386")
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH")
    root = tmp_path_factory.mktemp("fwreport")
    spec = get_use_case("sine").head_spec
    card = root / "model_card.json"
    head = {"layer_sizes": list(spec.layer_sizes), "activation": spec.activation, "loss": spec.loss}
    card.write_text(json.dumps({"name": "sine", "tflite_file": None, "head": head}))
    out = root / "firmware_report.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["firmware", "report", str(card), "--json", "--kernels", "reference"]) == 0
    out.write_text(buf.getvalue())
    return out


@pytest.mark.qemu
def test_simulate_adds_device_time_and_energy(sine_firmware_report: Path, tmp_path: Path) -> None:
    (fw,) = json.loads(sine_firmware_report.read_text())
    assert fw["insns_per_sgd_step"] > 1000 and fw["energy_uj_per_sgd_step"] > 0
    out = tmp_path / "sim"
    argv = ["simulate", "sine", *TINY, "--strategies", "tinyreptile,reptile,scratch",
            "--firmware-report", str(sine_firmware_report), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["firmware_costs"]["insns_per_sgd_step"] == fw["insns_per_sgd_step"]
    rows = report["strategies"]
    for name in ("tinyreptile", "reptile"):
        steps = rows[name]["device_grad_evals_per_round"]
        assert steps > 0
        # a float head has no backbone: the round is its SGD steps only
        assert rows[name]["device_insns_per_round"] == steps * fw["insns_per_sgd_step"]
        assert rows[name]["device_uj_per_round"] == pytest.approx(
            steps * fw["energy_uj_per_sgd_step"], abs=1e-3
        )
        assert rows[name]["device_ms_per_round"] == pytest.approx(
            steps * fw["insns_per_sgd_step"] / NRF52840_HZ * 1e3, abs=1e-3
        )
    # Reptile's 5 epochs over 10 stored samples cost 5x TinyReptile's 10 online steps
    assert rows["reptile"]["device_uj_per_round"] == pytest.approx(
        5 * rows["tinyreptile"]["device_uj_per_round"], rel=1e-3
    )
    assert rows["scratch"]["device_uj_per_round"] == 0
    md = (out / "report.md").read_text()
    assert "device uJ/device-round (nRF52840)" in md and "0.156 nJ per cycle" in md


def test_bad_firmware_report_is_one_line_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{
        "insns_per_inference": 0, "insns_per_sgd_step": 10, "energy_uj_per_inference": 0,
        "energy_uj_per_sgd_step": 1.0, "head_layer_sizes": [32, 32, 5],
    }]))  # fmt: skip
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path, message in ((wrong, "measures a head [32, 32, 5]"), (broken, "cannot read")):
        out = tmp_path / "never"
        code = main(["simulate", "sine", *TINY, "--firmware-report", str(path), "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0]
        assert not out.exists()
