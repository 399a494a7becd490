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
