"""The keyword-audio front end in C: CMSIS-DSP's q15 MFCC for host and QEMU.

* :func:`cmsis_dsp_sources` fetches the pinned CMSIS-DSP sources once with pip (the
  ``cmsisdsp`` 1.10.3 source distribution ships them, Apache-2.0) and caches them under
  ``$TINYFLEET_CMSIS_DSP_DIR`` (default ``~/.cache/tinyfleet/cmsis-dsp/1.10.3``).
* :func:`write_tables` writes the q15 tables of :mod:`tinyfleet.device.frontend` as C.
* :func:`write_cmake` writes the tables and ``kws_frontend.cmake``, the CMake library
  the device loop links when a model card says its input is audio (``firmware build``).
* :func:`build` compiles ``kws_frontend_main`` for the host (gcc) or the mps2-an386
  Cortex-M4F (arm-none-eabi-gcc, the QEMU port's startup and linker script).
* :func:`run` feeds it int16 clips; returns the MFCCs and, under QEMU ``-icount``, the
  instructions per 1 s window.

Both builds use CMSIS-DSP's portable C paths (``-D__GNUC_PYTHON__``, as the Python
wrapper is built): the sdist has no CMSIS-Core headers, which the Cortex-M DSP-intrinsic
paths need. ``python -m tinyfleet.firmware.frontend`` prints the report.
"""

from tinyfleet.firmware.frontend.build import (
    CMSIS_DSP_VERSION,
    FrontendBuild,
    build,
    cmsis_dsp_sources,
    frontend_report,
    run,
    write_cmake,
    write_tables,
)

__all__ = [
    "CMSIS_DSP_VERSION",
    "FrontendBuild",
    "build",
    "cmsis_dsp_sources",
    "frontend_report",
    "run",
    "write_cmake",
    "write_tables",
]
