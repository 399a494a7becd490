"""Building the firmware with CMake for one target, and finding the tools it needs."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinyfleet.errors import MissingToolError, TinyfleetError, UsageError
from tinyfleet.firmware.targets import TARGETS, cmake_args, get_target

FIRMWARE_DIR = Path(__file__).resolve().parent
QEMU = "qemu-system-arm"


class BuildError(TinyfleetError):
    """CMake or the compiler failed; the message carries the first error lines."""


def missing_tools(target: str) -> list[str]:
    """Programs the target needs that are not on PATH (empty when all are there)."""
    needed = ["cmake"]
    needed.append("cc" if target == "host" else "arm-none-eabi-gcc")
    if target in TARGETS and TARGETS[target].qemu_machine:
        needed.append(QEMU)
    return [tool for tool in needed if shutil.which(tool) is None]


def require_tools(target: str) -> None:
    missing = missing_tools(target)
    if missing:
        hint = (
            "apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
            "qemu-system-arm cmake"
        )
        raise MissingToolError(f"{', '.join(missing)} not found on PATH (install with: {hint})")


@dataclass(frozen=True)
class BuildResult:
    """Where a build put its outputs."""

    target: str
    build_dir: Path
    job_runner: Path | None
    map_file: Path | None
    device: Path | None = None


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "error" in ln.lower()]
        detail = " | ".join((lines or (proc.stdout + proc.stderr).splitlines()[-5:])[:4])
        raise BuildError(f"{cmd[0]} failed: {detail}")


def cmake_build(
    target: str,
    build_dir: str | Path,
    model_dir: str | Path | None = None,
    sanitize: bool = False,
    defines: dict[str, int] | None = None,
    device_config_dir: str | Path | None = None,
    kernels: str | None = None,
    frontend_dir: str | Path | None = None,
    size_opt: bool = True,
) -> BuildResult:
    """Configure and build ``firmware/`` for ``target`` in ``build_dir``.

    ``model_dir`` holds the generated ``tinyfleet_model.[ch]`` (the job runner is built only
    with a model). ``sanitize`` adds ASan/UBSan (host only). ``defines`` sets the job
    runner's buffer capacities (``TINYFLEET_JOB_MAX_PARAMS`` ...). ``device_config_dir`` holds
    ``tinyfleet_device_config.h`` (:func:`tinyfleet.firmware.device.write_device_config`); with
    it the device loop ``tinyfleet_device`` is built too. ``kernels`` (``reference`` or
    ``dsp``) overrides the target's kernel set from the target table. ``frontend_dir``
    holds ``kws_frontend.cmake`` (:func:`tinyfleet.firmware.frontend.write_cmake`): the
    device loop then takes raw audio windows and computes the MFCCs itself. ``size_opt``
    False builds every source at -O2 with full newlib: the images as they were before the
    flash work of issue 15, kept for comparison (``firmware/CMakeLists.txt``).
    """
    row = get_target(target)
    if kernels not in (None, "reference", "dsp"):
        raise UsageError(f"unknown kernel set {kernels!r}; choose reference or dsp")
    if sanitize and target != "host":
        raise UsageError("sanitizers are available for the host target only")
    require_tools(target)
    build = Path(build_dir).resolve()
    build.mkdir(parents=True, exist_ok=True)
    cmd = [
        "cmake",
        "-S",
        str(FIRMWARE_DIR),
        "-B",
        str(build),
        *cmake_args(row, kernels),
        f"-DTINYFLEET_SANITIZE={'ON' if sanitize else 'OFF'}",
        f"-DTINYFLEET_SIZE_OPT={'ON' if size_opt else 'OFF'}",
        f"-DTINYFLEET_MODEL_DIR={Path(model_dir).resolve() if model_dir else ''}",
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DTINYFLEET_DEVICE_CONFIG_DIR={Path(device_config_dir).resolve() if device_config_dir else ''}",
        f"-DTINYFLEET_KWS_FRONTEND_DIR={Path(frontend_dir).resolve() if frontend_dir else ''}",
        "-DTINYFLEET_JOB_DEFINES="
        + ";".join(f"{k}={v}" for k, v in sorted((defines or {}).items())),
    ]
    if target != "host":
        cmd.append(f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE_DIR / 'cmake' / 'arm-none-eabi.cmake'}")
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    _run(cmd)
    _run(["cmake", "--build", str(build), "--parallel", "2"])
    suffix = "" if target == "host" else ".elf"
    runner = build / f"tinyfleet_job_runner{suffix}"
    map_file = build / "tinyfleet_job_runner.map"
    device = build / f"tinyfleet_device{suffix}"
    return BuildResult(
        target=target,
        build_dir=build,
        job_runner=runner if runner.exists() else None,
        map_file=map_file if map_file.exists() else None,
        device=device if device.exists() else None,
    )
