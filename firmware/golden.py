"""Golden outputs from the TFLM Python interpreter (the reference the C must match)."""

from __future__ import annotations

import numpy as np


def tflm_outputs(model_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run each row of ``inputs`` (int8) through TFLM; returns ``(n, output_size)`` int8."""
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model_bytes)
    shape = interpreter.get_input_details(0)["shape"]
    outputs = []
    for row in np.asarray(inputs, dtype=np.int8):
        interpreter.set_input(row.reshape(shape), 0)
        interpreter.invoke()
        outputs.append(np.asarray(interpreter.get_output(0)).reshape(-1).copy())
    return np.stack(outputs)


def tflm_min_arena_bytes(model_bytes: bytes, upper: int | None = None) -> int:
    """Smallest tensor arena (bytes, 16-byte steps) in which TFLM allocates and runs the model.

    Found by bisection over real ``Interpreter`` instances; TFLM's error prints on
    failed attempts go to a captured stderr.
    """
    import os
    import sys
    import tempfile

    from tflite_micro import runtime

    def runs(size: int) -> bool:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=size)
                details = interpreter.get_input_details(0)
                interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
                interpreter.invoke()
                return True
            except (RuntimeError, ValueError):
                return False
            finally:
                os.dup2(saved, 2)
                os.close(saved)

    high = upper or max(10 * len(model_bytes), 64 * 1024)
    if not runs(high):
        raise RuntimeError(f"TFLM cannot run the model in a {high}-byte arena")
    low = 0  # invariant: runs(high), not runs(low) (an empty arena never works)
    while high - low > 16:
        mid = (low + high) // 2 // 16 * 16
        if mid <= low:
            break
        if runs(mid):
            high = mid
        else:
            low = mid
    return high
