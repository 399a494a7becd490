"""Mutation fuzz of the generator: corrupted .tflite files never trick it.

Each mutant changes 1-3 random bytes of a fixture model. The generator must either
reject it with a one-line tinyfleet error or emit C that, compiled with ASan/UBSan,
runs clean and gives TFLM's outputs for the same (mutated) model. 200 mutants run in
the normal suite, 3,000 under the ``slow`` marker.
"""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfleet.cli import main
from tinyfleet.errors import TinyfleetError
from tinyfleet.firmware.codegen import generate_from_file
from tinyfleet.firmware.jobs import inference_job
from tinyfleet.firmware.toolchain import FIRMWARE_DIR

pytestmark = pytest.mark.tf
MODELS = ("convnet", "nobias", "strided", "digits")

# TFLM runs in a child process: a mutant can crash the interpreter itself.
_GOLDEN = """
import sys, numpy as np
from tinyfleet.firmware.golden import tflm_outputs
data = open(sys.argv[1], 'rb').read()
inputs = np.load(sys.argv[2])
np.save(sys.argv[3], tflm_outputs(data, inputs))
"""


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        out[int(rng.integers(8, len(out)))] = int(rng.integers(0, 256))  # keep 'TFL3'
    return bytes(out)


def _compile(model_dir: Path, lib: Path, exe: Path, dsp: bool) -> None:
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
    # as CMake does for a DSP library: the model then calls the _fast entry points
    # wherever the generator judged a layer covered by the DSP kernels
    san += ["-DTINYFLEET_KERNELS_DSP=1"] if dsp else []
    cmd = ["cc", "-std=c99", "-O1", *san, f"-I{FIRMWARE_DIR / 'include'}", f"-I{model_dir}",
           str(FIRMWARE_DIR / "apps" / "tinyfleet_job_runner.c"),
           str(FIRMWARE_DIR / "ports" / "host" / "tinyfleet_job_port_host.c"),
           str(model_dir / "tinyfleet_model.c"), str(lib), "-lm", "-o", str(exe)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)


def _fuzz(n: int, n_run: int, models: Any, build: Any, tmp: Path) -> None:
    rng = np.random.default_rng(1234)
    tracebacks: list[str] = []
    accepted: list[tuple[str, Path, Path]] = []
    rejected = 0
    for i in range(n):
        name = MODELS[i % len(MODELS)]
        path = tmp / f"m{i}.tflite"
        path.write_bytes(_mutate(models[name].path.read_bytes(), rng))
        try:
            generate_from_file(path, tmp / f"g{i}")
        except TinyfleetError as error:
            assert "\n" not in str(error)
            rejected += 1
            continue
        except Exception:  # noqa: BLE001 - any other exception is the bug this test finds
            tracebacks.append(f"{path}: {traceback.format_exc(limit=-2)}")
            continue
        accepted.append((name, path, tmp / f"g{i}"))
    assert not tracebacks, f"{len(tracebacks)} tracebacks:\n" + "\n".join(tracebacks[:5])
    assert rejected > 0 and accepted  # both paths exercised
    for k, (name, path, model_dir) in enumerate(accepted[:n_run]):
        # both kernel sets, each compiled with ASan/UBSan
        kernels = "dsp" if k % 2 else "reference"
        lib = build(name, "host", kernels).build_dir / "libtinyfleet.a"
        exe = tmp / f"runner{k}"
        _compile(model_dir, lib, exe, kernels == "dsp")
        inputs = models[name].inputs[:20]
        (tmp / "job.bin").write_bytes(inference_job(inputs))
        proc = subprocess.run([str(exe), str(tmp / "job.bin"), str(tmp / "out.bin")],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, f"{path}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        np.save(tmp / "in.npy", inputs)
        golden = subprocess.run([sys.executable, "-c", _GOLDEN, str(path), str(tmp / "in.npy"),
                                 str(tmp / "gold.npy")], capture_output=True, check=False)  # fmt: skip
        if golden.returncode == 0:  # TFLM itself may refuse or crash on a mutant
            ours = np.frombuffer((tmp / "out.bin").read_bytes(), np.int8)
            assert np.array_equal(ours, np.load(tmp / "gold.npy").reshape(-1)), path


@pytest.mark.firmware
def test_fuzz_generator_200_mutants(
    fixture_models: Any, firmware_build: Any, tmp_path: Path
) -> None:
    _fuzz(200, 4, fixture_models, firmware_build, tmp_path)


@pytest.mark.firmware
@pytest.mark.slow
def test_fuzz_generator_3000_mutants(
    fixture_models: Any, firmware_build: Any, tmp_path: Path
) -> None:
    _fuzz(3000, 40, fixture_models, firmware_build, tmp_path)


def test_mutant_is_one_line_exit_2(
    fixture_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinyfleet.device.tooling.tflite_model import load_tflite
    from tinyfleet.firmware.validate import ModelCheckError, validate_model

    model = load_tflite(fixture_models["convnet"].path)
    validate_model(model)
    with pytest.raises(ModelCheckError, match="does not fit the target.s 64 bytes"):
        validate_model(model, ram_bytes=64)
    bad = tmp_path / "bad.tflite"
    rng = np.random.default_rng(7)
    for _ in range(200):  # find a mutant the validator rejects with a shape/quant fact
        bad.write_bytes(_mutate(fixture_models["convnet"].path.read_bytes(), rng))
        if main(["firmware", "generate", str(bad), "-o", str(tmp_path / "o")]) == 2:
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("tinyfleet: error:")
            return
    pytest.fail("no rejected mutant in 200")


_INSPECT = "from tinyfleet.cli import main; import sys; sys.exit(main(['inspect', sys.argv[1]]))"


def _inspect_mutants(n: int, models: Any, tmp: Path) -> None:
    # each in its own process: a crash (signal) must show up as such, not kill pytest
    rng = np.random.default_rng(99)
    for i in range(n):
        path = tmp / f"i{i}.tflite"
        path.write_bytes(_mutate(models[MODELS[i % len(MODELS)]].path.read_bytes(), rng))
        proc = subprocess.run([sys.executable, "-c", _INSPECT, str(path)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode in (0, 2), f"{path}: exit {proc.returncode}\n{proc.stderr[-1500:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-1500:]


def test_inspect_never_crashes_on_mutants(fixture_models: Any, tmp_path: Path) -> None:
    _inspect_mutants(6, fixture_models, tmp_path)


@pytest.mark.slow
def test_inspect_never_crashes_on_300_mutants(fixture_models: Any, tmp_path: Path) -> None:
    _inspect_mutants(300, fixture_models, tmp_path)
