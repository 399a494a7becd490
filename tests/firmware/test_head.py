"""The C head learns exactly like tinyfleet.device.head.MLPHead (float32, per sample)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tinyfleet.device.head import HeadSpec, MLPHead
from tinyfleet.firmware.jobs import head_job, parse_head_result, run_job

SPECS = {
    "sine-tanh-mse": HeadSpec((1, 40, 40, 1), "tanh", "mse"),
    "digits-relu-ce": HeadSpec((32, 16, 5), "relu", "softmax_ce"),
    "multi-output-mse": HeadSpec((6, 8, 3), "relu", "mse"),
    "linear-ce": HeadSpec((10, 4), "tanh", "softmax_ce"),
}
N_STEPS = 200
LR = 0.02


def _stream(spec: HeadSpec, seed: int) -> tuple[np.ndarray, list[Any]]:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(N_STEPS, spec.input_dim)).astype(np.float32)
    if spec.loss == "mse":
        ys: list[Any] = list(rng.normal(size=(N_STEPS, spec.output_dim)).astype(np.float32))
    else:
        ys = [int(v) for v in rng.integers(0, spec.output_dim, N_STEPS)]
    return xs, ys


def _compare(spec: HeadSpec, runner: Any, qemu: bool) -> None:
    head = MLPHead(spec, seed=3)
    start = head.get_vector()
    xs, ys = _stream(spec, seed=7)
    losses = np.array([head.sgd_step(x, y, LR) for x, y in zip(xs, ys, strict=True)])
    result, _ = run_job(runner, head_job(spec, start, LR, xs, ys), qemu=qemu)
    c_params, c_losses = parse_head_result(result, spec, N_STEPS)
    expected = head.get_vector()
    assert not np.allclose(expected, start)  # it did learn something
    scale = float(np.max(np.abs(expected)))
    assert float(np.max(np.abs(c_params - expected))) <= 1e-5 * scale
    np.testing.assert_allclose(c_params, expected, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(c_losses, losses, rtol=1e-4, atol=1e-6)


def _runner(runners: dict[str, Any], kind: str) -> Any:
    if kind not in runners:
        pytest.skip(f"toolchain for {kind} absent (cmake / cc / arm-none-eabi-gcc / qemu)")
    return runners[kind]


@pytest.mark.firmware
@pytest.mark.parametrize("spec_name", SPECS)
def test_host_head_matches_python(spec_name: str, plain_runners: dict[str, Any]) -> None:
    _compare(SPECS[spec_name], _runner(plain_runners, "host"), qemu=False)


@pytest.mark.qemu
@pytest.mark.parametrize("spec_name", SPECS)
def test_qemu_head_matches_python(spec_name: str, plain_runners: dict[str, Any]) -> None:
    _compare(SPECS[spec_name], _runner(plain_runners, "qemu"), qemu=True)
