"""The C keyword front end (CMSIS-DSP arm_mfcc_q15 from the pinned sdist) agrees with
the Python front end bit for bit, on the host and on the emulated Cortex-M4, and runs
well within real time at 64 MHz."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.device.frontend import MfccFrontend
from tinyfleet.errors import MissingToolError
from tinyfleet.firmware import frontend as cfe
from tinyfleet.firmware.frontend.build import CLOCK_HZ

pytestmark = pytest.mark.firmware


def clips(n: int = 6) -> np.ndarray:
    """Tones, chirps, noise, silence, clipping and a step: the front end's edge cases."""
    rng = np.random.default_rng(1)
    t = np.arange(16_000) / 16_000
    out = [
        8000 * np.sin(2 * np.pi * 440 * t),
        6000 * np.sin(2 * np.pi * (100 * t + 3000 * t**2)) + 200 * rng.standard_normal(16_000),
        3000 * rng.standard_normal(16_000),
        np.zeros(16_000),
        np.clip(40000 * np.sin(2 * np.pi * 97 * t), -32768, 32767),
        np.where(t > 0.5, 20000, -5),
    ]
    out += [rng.integers(-300, 300, 16_000) for _ in range(max(0, n - len(out)))]
    return np.stack([np.round(c).astype(np.int16) for c in out[:n]])


def _build(target: str, tmp_path: Path) -> cfe.FrontendBuild:
    try:
        return cfe.build(target, tmp_path)
    except MissingToolError as error:
        pytest.skip(str(error))


def test_tables_are_the_python_ones(tmp_path: Path) -> None:
    from tinyfleet.device.frontend import tables

    text = (cfe.write_tables(tmp_path) / "kws_mfcc_tables.c").read_text()
    window = text.split("tinyfleet_kws_window[512] = {")[1].split("}")[0]
    assert [int(v) for v in window.split(",")] == tables().window.tolist()
    assert "#define TINYFLEET_KWS_FRAMES 49" in (tmp_path / "kws_mfcc_tables.h").read_text()


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler")
def test_host_front_end_is_bit_exact(tmp_path: Path) -> None:
    fb = _build("host", tmp_path)
    data = clips(8)
    mfcc, _ = cfe.run(fb, data)
    python = MfccFrontend()
    for clip, got in zip(data, mfcc, strict=True):
        np.testing.assert_array_equal(got, python.features_q(clip))


@pytest.mark.qemu
@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)
def test_qemu_front_end_is_bit_exact_and_real_time(tmp_path: Path) -> None:
    fb = _build("qemu", tmp_path)
    data = clips(6)
    mfcc, insns = cfe.run(fb, data)
    python = MfccFrontend()
    for clip, got in zip(data, mfcc, strict=True):
        np.testing.assert_array_equal(got, python.features_q(clip))
    # Deterministic instruction counts (-icount): ~6M per 1 s window, i.e. ~0.1 of a
    # 64 MHz Cortex-M4 at one instruction per cycle.
    assert insns.shape == (6,) and (insns > 1_000_000).all()
    assert insns.max() < 0.5 * CLOCK_HZ
    _, insns2 = cfe.run(fb, data[:2])
    np.testing.assert_array_equal(insns2, insns[:2])
