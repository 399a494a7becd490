"""Devices that sleep: the duty-cycle clock, next-to-wake scheduling, buffered async."""

from __future__ import annotations

import pytest

from tinyfleet.errors import UsageError
from tinyfleet.server.async_rounds import DutyCycle, NextToWakeSampler, SimClock, time_to_reach


def test_next_wake_and_window():
    duty = DutyCycle(60.0, 6.0, 3, seed=0, compute_s=1.0)
    phases = duty.phases
    assert duty.asleep_fraction == pytest.approx(0.9)
    for d in range(3):
        p = float(phases[d])
        assert duty.next_wake(d, p + 1.0) == pytest.approx(p + 1.0)  # awake, time left
        assert duty.next_wake(d, p + 5.5) == pytest.approx(p + 60.0)  # too late: next wake
        assert duty.done_at(d, p + 10.0) == pytest.approx(p + 61.0)
        assert duty.window_end(d, p + 60.0) == pytest.approx(p + 66.0)


def test_bad_duty_cycle():
    with pytest.raises(UsageError):
        DutyCycle(10.0, 20.0, 2)
    with pytest.raises(UsageError):
        DutyCycle(10.0, 1.0, 2, compute_s=2.0)


def test_next_to_wake_takes_each_device_once_per_window():
    duty = DutyCycle(60.0, 6.0, 5, seed=1)
    clock = SimClock()
    sampler = NextToWakeSampler(duty, clock)
    picks = [sampler.select(r, 1)[0] for r in range(1, 6)]
    assert sorted(picks) == list(range(5))  # nobody twice before everyone once


def test_time_to_reach():
    curve = [{"time_s": 0.0, "fewshot": 3.0}, {"time_s": 5.0, "fewshot": 1.0}]
    assert time_to_reach(curve, 2.0, lower_is_better=True) == 5.0
    assert time_to_reach(curve, 0.5, lower_is_better=True) is None
