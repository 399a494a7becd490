"""Generated int8 inference is bit-exact with the TFLM Python interpreter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tinyfleet.firmware.jobs import inference_job, run_job
from tinyfleet.firmware.targets import TARGETS

MODELS = ("convnet", "nobias", "strided", "odd", "digits", "presence")
pytestmark = pytest.mark.tf  # the models are built with TensorFlow


def _check(model: Any, result: bytes) -> None:
    outputs = np.frombuffer(result, dtype=np.int8).reshape(model.golden.shape)
    mismatches = int(np.sum(outputs != model.golden))
    assert mismatches == 0, f"{model.name}: {mismatches} of {outputs.size} int8 outputs differ"


def test_fixture_models_cover_every_supported_operator(fixture_models: Any) -> None:
    from tinyfleet.firmware.codegen import SUPPORTED_OPERATORS

    used = set().union(*(m.generated.operators for m in fixture_models.values()))
    assert used == set(SUPPORTED_OPERATORS)
    assert all(m.golden.shape == (300, m.generated.output_size) for m in fixture_models.values())
    # a missing bias is exercised: the converter drops the FULLY_CONNECTED bias (-1)
    from tinyfleet.device.tooling.tflite_model import load_tflite

    ops = load_tflite(fixture_models["nobias"].path).main.operators
    assert any(op.op == "FULLY_CONNECTED" and op.inputs[2:] in ((), (-1,)) for op in ops)
    assert len({m.golden.tobytes() for m in fixture_models.values()}) == len(MODELS)
    # the presence backbone is FULLY_CONNECTED only, on a rank-2 (1, 6) input
    assert set(fixture_models["presence"].generated.operators) == {"FULLY_CONNECTED"}


@pytest.mark.firmware
@pytest.mark.parametrize("name", MODELS)
def test_host_inference_is_bit_exact(name: str, fixture_models: Any, host_builds: Any) -> None:
    model = fixture_models[name]
    result, _ = run_job(host_builds[name].job_runner, inference_job(model.inputs))
    _check(model, result)


@pytest.mark.firmware
@pytest.mark.parametrize("name", MODELS)
def test_host_dsp_kernels_are_bit_exact(
    name: str, fixture_models: Any, firmware_build: Any
) -> None:
    # the DSP kernels' indexing under ASan/UBSan, with C stand-ins for SMLAD/SXTB16
    model = fixture_models[name]
    build = firmware_build(name, "host", "dsp")
    result, _ = run_job(build.job_runner, inference_job(model.inputs))
    _check(model, result)


# (target, kernel set): M3 has no DSP extension, so reference only; the others run
# both sets. M7 and M55 add minutes, so they are in the slow set.
QEMU_MATRIX = [
    ("qemu-mps2-an385", "reference"),
    ("qemu-mps2-an386", "reference"),
    ("qemu-mps2-an386", "dsp"),
    ("qemu-mps2-an505", "dsp"),
    pytest.param("qemu-mps2-an505", "reference", marks=pytest.mark.slow),
    pytest.param("qemu-mps2-an500", "dsp", marks=pytest.mark.slow),
    pytest.param("qemu-mps3-an547", "dsp", marks=pytest.mark.slow),
]


@pytest.mark.qemu
@pytest.mark.parametrize(("target", "kernels"), QEMU_MATRIX)
@pytest.mark.parametrize("name", MODELS)
def test_qemu_inference_is_bit_exact(
    name: str, target: str, kernels: str, fixture_models: Any, firmware_build: Any
) -> None:
    model = fixture_models[name]
    build = firmware_build(name, target, kernels)
    machine = TARGETS[target].qemu_machine
    assert machine is not None
    result, _ = run_job(build.job_runner, inference_job(model.inputs), qemu=True, machine=machine)
    _check(model, result)
