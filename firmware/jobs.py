"""Job files for the C job runner (``apps/tinyfleet_job_runner.c``) and running them.

The same job runs on the host build and inside QEMU (semihosting file I/O), so the
tests and ``tinyfleet firmware report`` compare exactly the same computation.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinyfleet.device.head import HeadSpec
from tinyfleet.errors import TinyfleetError
from tinyfleet.firmware.toolchain import QEMU

JOB_FILE = "tinyfleet_job.bin"
RESULT_FILE = "tinyfleet_result.bin"
_ACTIVATIONS = {"tanh": 0, "relu": 1}
_LOSSES = {"mse": 0, "softmax_ce": 1}


class JobError(TinyfleetError):
    """The firmware job runner failed (non-zero exit)."""


def inference_job(inputs: np.ndarray) -> bytes:
    """``INFR``: a batch of int8 inputs, one row per inference."""
    rows = np.asarray(inputs, dtype=np.int8).reshape(len(inputs), -1)
    return b"INFR" + struct.pack("<i", len(rows)) + rows.tobytes()


def _head_body(
    spec: HeadSpec, params: np.ndarray, lr: float, xs: np.ndarray, ys: Sequence[object]
) -> bytes:
    sizes = spec.layer_sizes
    parts = [struct.pack("<i", len(sizes) - 1), struct.pack(f"<{len(sizes)}i", *sizes)]
    parts.append(
        struct.pack("<iifi", _ACTIVATIONS[spec.activation], _LOSSES[spec.loss], lr, len(xs))
    )
    parts.append(np.asarray(params, dtype="<f4").tobytes())
    for x, y in zip(xs, ys, strict=True):
        parts.append(np.asarray(x, dtype="<f4").reshape(-1).tobytes())
        if spec.loss == "mse":
            parts.append(np.asarray(y, dtype="<f4").reshape(-1).tobytes())
        else:
            parts.append(struct.pack("<i", int(y)))  # type: ignore[call-overload]
    return b"".join(parts)


def head_job(
    spec: HeadSpec, params: np.ndarray, lr: float, xs: np.ndarray, ys: Sequence[object]
) -> bytes:
    """``HEAD``: initial flat parameters, then one SGD step per (x, y) sample."""
    return b"HEAD" + _head_body(spec, params, lr, xs, ys)


def bench_job(
    spec: HeadSpec, params: np.ndarray, lr: float, x: np.ndarray, y: object, reps: int
) -> bytes:
    """``BNCH``: ``reps`` inferences and ``reps`` SGD steps between counter readings."""
    return b"BNCH" + struct.pack("<i", reps) + _head_body(spec, params, lr, x[None], [y])


def parse_head_result(data: bytes, spec: HeadSpec, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Final flat parameters and the per-sample losses from a ``HEAD`` result."""
    values = np.frombuffer(data, dtype="<f4")
    if values.size != spec.num_params + n_samples:
        raise JobError(
            f"head result has {values.size} floats, expected {spec.num_params + n_samples}"
        )
    return values[: spec.num_params].astype(np.float32), values[spec.num_params :].astype(
        np.float32
    )


def qemu_command(elf: str | Path, icount: bool = False, machine: str = "mps2-an386") -> list[str]:
    """``qemu-system-arm`` for one machine of the target table, with semihosting."""
    cmd = [
        QEMU, "-M", machine, "-nographic", "-monitor", "none", "-serial", "null",
        "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
    ]  # fmt: skip
    if icount:
        # One virtual nanosecond per instruction: timers then count instructions.
        cmd += ["-icount", "shift=0"]
    return cmd


def run_job(
    runner: str | Path,
    job: bytes,
    qemu: bool = False,
    icount: bool = False,
    timeout: float = 300,
    machine: str = "mps2-an386",
) -> tuple[bytes, str]:
    """Run one job with the host binary or the QEMU ELF; returns (result bytes, stdout).

    Anything but a clean exit that wrote a result is a :class:`JobError` with the
    output's last lines: a fault in QEMU exits 99 with the startup code's message, and
    an exit 0 without a result file (the silent failure) is an error too.
    """
    with tempfile.TemporaryDirectory(prefix="tinyfleet_job_") as tmp:
        work = Path(tmp)
        (work / JOB_FILE).write_bytes(job)
        if qemu:
            cmd = qemu_command(Path(runner).resolve(), icount=icount, machine=machine)
        else:
            cmd = [str(Path(runner).resolve()), JOB_FILE, RESULT_FILE]
        if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
            raise JobError(f"{cmd[0]} not found")
        proc = subprocess.run(
            cmd, cwd=work, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise JobError(f"job runner exited {proc.returncode}: {' | '.join(tail)}")
        result = work / RESULT_FILE
        if not result.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise JobError(
                f"job runner exited 0 without a result: {' | '.join(tail) or 'no output'}"
            )
        return result.read_bytes(), proc.stdout
