"""The issue's targets for `tinyfleet simulate sine` with its defaults (seed 0).

This runs the whole default job (10,000 TinyReptile rounds and the baselines at equal
compute, ~30-60 s), so it is marked slow; the numbers are deterministic under the seed.
"""

import pytest

from tinyfleet.simulations.runner import run, settings_for
from tinyfleet.simulations.usecase import get_use_case


@pytest.mark.slow
def test_sine_defaults_meet_the_targets():
    use_case = get_use_case("sine")
    report = run(settings_for(use_case))
    s = report["strategies"]
    tiny, reptile, fedavg, scratch = (s[n] for n in ("tinyreptile", "reptile", "fedavg", "scratch"))
    totals = [tiny["grad_evals_total"], reptile["grad_evals_total"], fedavg["grad_evals_total"]]
    assert max(totals) / min(totals) <= 1.10
    assert tiny["fewshot"] < 0.5 * scratch["fewshot"]
    assert tiny["fewshot"] < fedavg["fewshot"]
    assert tiny["fewshot"] <= 1.5 * reptile["fewshot"]
    assert tiny["device_ram_bytes"] <= 0.5 * reptile["device_ram_bytes"]
    assert tiny["device_grad_evals_per_round"] <= 0.5 * reptile["device_grad_evals_per_round"]
