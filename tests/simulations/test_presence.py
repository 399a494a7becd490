"""Presence detection: the simulated building's physics, the UCI loader, the use case."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.cli import main
from tinyfleet.errors import InputFileError
from tinyfleet.simulations import building
from tinyfleet.simulations.building import Room, linear_recurrence, sample_room, simulate_room
from tinyfleet.simulations.loaders import uci_occupancy
from tinyfleet.simulations.usecases import presence


def _office(**changes: object) -> Room:
    room = sample_room(np.random.default_rng(3))
    base = dict(
        kind="office",
        volume_m3=40.0,
        capacity=2,
        ach_on=1.0,
        ach_off=0.3,
        co2_offset=0.0,
        co2_gain=1.0,
        sample_minutes=1,
        season="winter",
    )
    base.update(changes)
    return building.with_changes(room, **base)


def test_linear_recurrence_matches_the_loop() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.85, 1.0, 3000), rng.normal(size=3000)
    loop = [2.0]
    for ai, bi in zip(a, b, strict=True):
        loop.append(ai * loop[-1] + bi)
    np.testing.assert_allclose(linear_recurrence(a, b, 2.0), loop, atol=1e-9)


def test_co2_rises_with_people_and_decays_with_ventilation() -> None:
    trace = simulate_room(_office(), 7, np.random.default_rng(1))
    co2 = trace.readings[:, 3]
    slope = np.diff(co2)
    occupied = trace.occupied[1:] == 1
    # People exhale: CO2 climbs while they are in, falls back once they left.
    assert slope[occupied].mean() > 0.5
    elevated = ~occupied & (trace.occupied[:-1] == 0) & (co2[:-1] > 550)
    assert elevated.sum() > 20 and slope[elevated].mean() < -1
    assert co2[trace.occupied == 1].mean() > co2[trace.occupied == 0].mean() + 100
    # Far from any occupancy CO2 relaxes to the outdoor level (no offset, gain 1 here).
    night = (trace.minutes % 1440 == 5 * 60) & (trace.minutes > 1440)
    assert np.all(np.abs(co2[night] - 410) < 60)
    # More ventilation, lower CO2 peaks for the same people and schedule.
    airy = simulate_room(_office(ach_on=6.0), 7, np.random.default_rng(1))
    assert airy.readings[:, 3].max() < co2.max() - 100
    # Lamps: light is higher when people are in; humidity stays physical.
    assert (
        trace.readings[trace.occupied == 1, 2].mean()
        > trace.readings[trace.occupied == 0, 2].mean()
    )
    assert np.all((trace.readings[:, 1] >= 0) & (trace.readings[:, 1] <= 100))


def test_rooms_differ_in_sampling_offsets_and_schedules() -> None:
    rng = np.random.default_rng(7)
    rooms = [sample_room(rng) for _ in range(30)]
    assert {r.sample_minutes for r in rooms} == {1, 2, 5}
    assert len({r.kind for r in rooms}) == 3
    assert np.std([r.co2_offset for r in rooms]) > 10
    trace = simulate_room(rooms[0], 2, rng)
    assert np.all(np.diff(trace.minutes) == rooms[0].sample_minutes)


def test_presence_tasks_have_features_and_both_labels() -> None:
    task = presence.simulated_room_task(np.random.default_rng(0), "heldout")
    x, y = task.sample(500, np.random.default_rng(1))
    assert x.shape == (500, len(presence.FEATURES)) and x.dtype == np.float32
    assert set(np.unique(y)) == {0, 1}
    assert 0.02 < task.occupied_fraction < 0.6
    assert np.all(np.abs(x) < 20)


def _write_uci(folder: Path, days: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    room = _office(sample_minutes=5)
    for i, name in enumerate(("datatest.txt", "datatraining.txt", "datatest2.txt")):
        trace = simulate_room(room, days, rng)
        uci_occupancy.write_file(trace, folder / name, datetime(2015, 2, 2 + days * i))
    return folder


def test_uci_loader_reads_the_published_layout(tmp_path: Path) -> None:
    folder = _write_uci(tmp_path / "uci")
    first = (folder / "datatest.txt").read_text().splitlines()
    assert first[0] == '"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"'
    assert first[1].startswith('"1","2015-02-02 00:00:00",')
    train, heldout = uci_occupancy.load_rooms(folder)
    assert len(train) == 6 and len(heldout) == 3
    # Held-out room-days are the latest ones: never seen in training, later in time.
    assert max(t.name[-10:] for t in train) < min(t.name[-10:] for t in heldout)
    assert all(len(t) == 288 for t in train + heldout)
    use_case = presence.presence_use_case(data_dir=folder)
    task = use_case.sample_task(np.random.default_rng(0), "heldout")
    assert task.name in {t.name for t in heldout}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "date,Temperature,Humidity,Light,C02,HumidityRatio,Occupancy\n",
            "missing column(s) CO2",
        ),
        ("date,Temperature,Humidity,Light,CO2,Occupancy\n", "missing column(s) HumidityRatio"),
        (
            "date,Temperature,Humidity,Light,CO2,HumidityRatio,Occupancy\n"
            "2015-02-02 10:00:00,21,30,n/a,400,0.004,1\n",
            "line 2: column Light: not a number: 'n/a'",
        ),
        (
            "date,Temperature,Humidity,Light,CO2,HumidityRatio,Occupancy\n"
            "yesterday,21,30,0,400,0.004,1\n",
            "line 2: column date: not a date",
        ),
        (
            "date,Temperature,Humidity,Light,CO2,HumidityRatio,Occupancy\n"
            "2015-02-02 10:00:00,21,30,0,400,0.004,2\n",
            "column Occupancy: must be 0 or 1",
        ),
    ],
)
def test_bad_csv_one_line_exit_2_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "room.csv").write_text(content)
    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        uci_occupancy.load_rooms(folder)
    out = tmp_path / "report"
    assert main(["simulate", "presence", "--data-dir", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinyfleet: error: ") and message in err[0]
    assert not out.exists()


def test_no_files_and_no_loader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["simulate", "presence", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "no *.txt or *.csv files" in capsys.readouterr().err
    assert (
        main(["simulate", "sine", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    )
    assert "no real-data loader" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_simulate_presence_beats_scratch_and_the_majority_class(tmp_path: Path) -> None:
    """Held-out rooms, 10 shots / 10 online steps: the meta-learned head is more accurate
    than the scratch head and than guessing each room's majority class."""
    out = tmp_path / "sim"
    argv = ["simulate", "presence", "--out", str(out), "--no-progress"]
    argv += ["--rounds", "300", "--devices", "60", "--heldout-devices", "30"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["strategies"]
    majority = report["fewshot_protocol"]["majority_class_rate"]
    assert 0.6 < majority < 0.95
    assert rows["tinyreptile"]["fewshot"] > rows["scratch"]["fewshot"] + 0.03
    assert rows["tinyreptile"]["fewshot"] > majority + 0.03
    assert "majority class" in (out / "report.md").read_text()


def test_uci_files_simulate_end_to_end(tmp_path: Path) -> None:
    folder = _write_uci(tmp_path / "uci")
    out = tmp_path / "sim"
    argv = ["simulate", "presence", "--data-dir", str(folder), "--out", str(out), "--no-progress"]
    argv += ["--rounds", "100", "--strategies", "tinyreptile,scratch", "--heldout-devices", "6"]
    assert main(argv) == 0
    rows = json.loads((out / "report.json").read_text())["strategies"]
    assert rows["tinyreptile"]["fewshot"] > rows["scratch"]["fewshot"]
