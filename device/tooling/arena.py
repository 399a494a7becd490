"""Measuring the TFLM tensor arena a model needs (host-side tooling, not device code).

TFLM can crash (SIGSEGV) instead of failing cleanly when an arena is slightly too small,
so sizes near the limit are tried only in child processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinyfleet.device.tooling.tflite_model import TFLiteModel, read_tflite
from tinyfleet.errors import InputFileError

_ARENA_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")


def _generous_arena(model: TFLiteModel, model_bytes: bytes) -> int:
    """An arena surely large enough: twice every activation tensor, plus room for TFLM's
    per-operator bookkeeping. Never run TFLM near its limit in-process (it can crash)."""
    activations = sum(t.nbytes for sg in model.subgraphs for t in sg.tensors if not t.is_constant)
    return 2 * activations + len(model_bytes) + 64 * 1024


def interpreter_for(model_bytes: bytes, model: TFLiteModel) -> Any:
    from tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(
            model_bytes, arena_size=_generous_arena(model, model_bytes)
        )
    except (RuntimeError, ValueError) as error:
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        raise InputFileError(f"TFLM cannot load the model: {first}") from None


@contextlib.contextmanager
def captured_fd(fd: int) -> Iterator[list[bytes]]:
    """Capture what is written to file descriptor ``fd`` (1 or 2), C code included (the
    TFLM interpreter reports on stderr); the bytes are in the yielded list afterwards."""
    result: list[bytes] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield result
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            result.append(sink.read())


# Runs in a child process: TFLM can crash (SIGSEGV) instead of failing cleanly when an
# arena is slightly too small, so sizes near the limit are never tried in-process.
_PROBE = """
import sys
import numpy as np
from tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
for index in range(int(sys.argv[3])):
    details = interpreter.get_input_details(index)
    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), index)
interpreter.invoke()
print("OK")
"""
# Also in a child process: a corrupt model can crash TFLM at any arena size, and a
# crash must be an error message (tinyfleet inspect, report), not a dead Python.
_RECORD = _PROBE.replace('print("OK")', "interpreter.print_allocations()")
_ARENA_ALIGN = 16


def _recorded_arena(path: Path, arena: int, n_inputs: int) -> int:
    """TFLM's RecordingMicroAllocator total for the model at ``path``, in a child."""
    result = subprocess.run(
        [sys.executable, "-c", _RECORD, str(path), str(arena), str(n_inputs)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    match = _ARENA_TOTAL.search(result.stdout + result.stderr)
    if result.returncode != 0 or match is None:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        why = f"signal {-result.returncode}" if result.returncode < 0 else (lines or ["?"])[-1]
        raise InputFileError(f"TFLM cannot run the model ({why})")
    return int(match.group(1))


_ARENA_CACHE: dict[str, int] = {}


def measure_arena_bytes(model_bytes: bytes) -> int:
    """Smallest tensor arena (a multiple of 16 bytes) in which TFLM runs the model.

    TFLM's ``RecordingMicroAllocator`` report (head + tail after one ``invoke``) is the
    starting point, but it leaves out the temporary allocations made while the kernels
    prepare, so the report alone can be too small to run in. The size is therefore
    found by bisection between the report and a size that works, each try in a child
    process. Results are cached per model (sha256) for the life of the process.
    """
    key = hashlib.sha256(model_bytes).hexdigest()
    if key in _ARENA_CACHE:
        return _ARENA_CACHE[key]
    model = read_tflite(model_bytes)
    n_inputs = len(model.main.inputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        recorded = _recorded_arena(path, _generous_arena(model, model_bytes), n_inputs)

        def works(size: int) -> bool:
            result = subprocess.run(
                [sys.executable, "-c", _PROBE, str(path), str(size), str(n_inputs)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            return result.returncode == 0 and result.stdout.strip() == "OK"

        low = -(-recorded // _ARENA_ALIGN)  # in units of 16 bytes; low - 1 assumed to fail
        high = low
        while not works(high * _ARENA_ALIGN):
            low = high + 1
            high = high * 2
            if high * _ARENA_ALIGN > max(64 * len(model_bytes), 1 << 24):
                raise InputFileError("TFLM cannot run the model in any arena size tried")
        while low < high:  # invariant: high works
            mid = (low + high) // 2
            if works(mid * _ARENA_ALIGN):
                high = mid
            else:
                low = mid + 1
    _ARENA_CACHE[key] = high * _ARENA_ALIGN
    return _ARENA_CACHE[key]
