"""tinyfleet.firmware: the C firmware and the host tools around it.

Role: the portable C99 library (``src/``, ``include/``, ``apps/``, ``ports/``), the model
code generator (``codegen``, ``quantize``, ``arena``) verified bit-exact against TFLM, the
build and QEMU toolchain wrappers (``toolchain``, ``jobs``), cost reports (``report``),
and the serial link to a board (``framing``, ``bridge``: a firmware trainer for the device
client's round function).

May import ``tinyfleet.device`` (head spec, wire codec, round function, model reader).
Never ``tinyfleet.server``, ``tinyfleet.simulations`` or TensorFlow.
"""
