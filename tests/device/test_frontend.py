"""The q15 MFCC front end (CMSIS-DSP): shapes, determinism, and agreement with
CMSIS-DSP's float32 MFCC on the same tables."""

from __future__ import annotations

import numpy as np
import pytest

from tinyfleet.device import frontend as fe
from tinyfleet.errors import UsageError


def chirp(seconds: float = 1.0, amplitude: float = 6000.0) -> np.ndarray:
    t = np.arange(int(seconds * fe.SAMPLE_RATE)) / fe.SAMPLE_RATE
    rng = np.random.default_rng(0)
    x = amplitude * np.sin(2 * np.pi * (200 * t + 1500 * t**2)) + 300 * rng.standard_normal(len(t))
    return np.round(x).astype(np.int16)


def test_shapes_and_tables() -> None:
    assert fe.NUM_FRAMES == 49 and fe.FEATURE_SHAPE == (49, 10, 1)
    t = fe.tables()
    assert t.window.dtype == np.int16 and t.window.shape == (512,)
    assert t.dct.shape == (10 * 40,) and t.filter_pos.shape == t.filter_len.shape == (40,)
    assert int(t.filter_len.sum()) == len(t.filter_coefs)
    # The periodic Hann window peaks at the centre (q15 just below 1.0).
    assert int(t.window[256]) == 32767 and int(t.window[0]) == 0


def test_features_are_deterministic_q8_7() -> None:
    mfcc = fe.MfccFrontend()
    clip = chirp()
    q = mfcc.features_q(clip)
    assert q.shape == (49, 10) and q.dtype == np.int16
    np.testing.assert_array_equal(q, fe.MfccFrontend().features_q(clip.copy()))
    np.testing.assert_array_equal(mfcc.features(clip)[..., 0], q.astype(np.float32) / 128)


def test_q15_tracks_cmsis_float32_mfcc() -> None:
    """Same tables in float32 through arm_mfcc_f32 on x / 32768: the fixed-point path
    stays within a fraction of a log unit (c0 is the log energy, ~ -30 .. 15)."""
    import cmsisdsp as dsp
    import cmsisdsp.datatype as dt
    import cmsisdsp.mfcc as m

    lengths, positions, coefs = m.melFilterMatrix(dt.F32, 20, 4000, 40, 16000, 512)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)).astype(np.float32)
    s = dsp.arm_mfcc_instance_f32()
    dsp.arm_mfcc_init_f32(
        s, 512, 40, 10, m.dctMatrix(dt.F32, 10, 40),
        np.array(positions, np.uint32), np.array(lengths, np.uint32), coefs, window,
    )  # fmt: skip
    tmp = np.zeros(514, np.float32)
    clip = chirp()
    q = fe.MfccFrontend().features_q(clip).astype(np.float64) / 128
    ref = np.array(
        [
            dsp.arm_mfcc_f32(s, (clip[i * 320 : i * 320 + 512] / 32768).astype(np.float32), tmp)
            for i in range(49)
        ]
    )
    error = np.abs(q - ref)
    assert error.mean() < 0.3 and error.max() < 1.5
    assert np.corrcoef(q.ravel(), ref.ravel())[0, 1] > 0.995


def test_louder_is_higher_c0_and_other_words_differ() -> None:
    mfcc = fe.MfccFrontend()
    quiet, loud = mfcc.features(chirp(amplitude=1000)), mfcc.features(chirp(amplitude=8000))
    assert loud[:, 0].mean() > quiet[:, 0].mean() + 1.0
    silence = mfcc.features(np.zeros(16000, np.int16))
    assert np.isfinite(silence).all()


def test_bad_clips_are_refused() -> None:
    mfcc = fe.MfccFrontend()
    with pytest.raises(UsageError, match="16000 int16"):
        mfcc.features_q(np.zeros(8000, np.int16))
    with pytest.raises(UsageError, match="16000 int16"):
        mfcc.features_q(np.zeros(16000, np.float32))
