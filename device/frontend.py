"""The keyword-audio front end a device runs: 1 s of 16 kHz int16 audio -> q15 MFCCs.

Computed with CMSIS-DSP's fixed-point MFCC (``arm_mfcc_q15``, from the ``cmsisdsp``
package: the same C sources the firmware compiles), so the board and the simulator
see the same integers. Per frame of ``FFT_LEN`` = 512 samples (32 ms, hop ``HOP`` = 320
samples = 20 ms, 49 frames per second): Hann window, 512-point real FFT, magnitude,
``NUM_MEL`` = 40 triangular mel filters (20 Hz .. 4 kHz), log, DCT-II to ``NUM_MFCC``
= 10 coefficients. CMSIS-DSP returns them as q8.7 (int16; value = n / 128).

All tables (window, packed mel filters, DCT matrix) are q15, made here once from the
formulas in ``cmsisdsp.mfcc``; :func:`tables` hands the same integers to the C code
generator, which is what makes C and Python agree bit for bit.

Imports only numpy and cmsisdsp (a device-side module: no TensorFlow, no Flower).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tinyfleet.errors import MissingToolError, UsageError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # 1 s windows
FFT_LEN = 512
HOP = 320
NUM_MEL = 40
NUM_MFCC = 10
MEL_FMIN_HZ = 20.0
MEL_FMAX_HZ = 4000.0
NUM_FRAMES = 1 + (CLIP_SAMPLES - FFT_LEN) // HOP  # 49
MFCC_Q = 7  # arm_mfcc_q15 output: q8.7
FEATURE_SHAPE = (NUM_FRAMES, NUM_MFCC, 1)


@dataclass(frozen=True)
class MfccTables:
    """The q15 constants ``arm_mfcc_init_q15`` takes (identical on host and board)."""

    window: np.ndarray  # (FFT_LEN,) int16
    filter_pos: np.ndarray  # (NUM_MEL,) uint32: first FFT bin of each mel filter
    filter_len: np.ndarray  # (NUM_MEL,) uint32: bins per filter
    filter_coefs: np.ndarray  # (sum(filter_len),) int16, packed
    dct: np.ndarray  # (NUM_MFCC * NUM_MEL,) int16, row-major


def _dsp() -> tuple[object, object, object]:
    try:
        import cmsisdsp
        import cmsisdsp.datatype as dt
        import cmsisdsp.mfcc as mfcc
    except ImportError:
        raise MissingToolError(
            "the keyword front end needs CMSIS-DSP: pip install cmsisdsp==1.10.3"
        ) from None
    return cmsisdsp, dt, mfcc


@lru_cache(maxsize=1)
def tables() -> MfccTables:
    """The front end's fixed-point tables (periodic Hann window, mel filters, DCT)."""
    _, dt, mfcc = _dsp()
    lengths, positions, coefs = mfcc.melFilterMatrix(  # type: ignore[attr-defined]
        dt.Q15,  # type: ignore[attr-defined]
        MEL_FMIN_HZ,
        MEL_FMAX_HZ,
        NUM_MEL,
        SAMPLE_RATE,
        FFT_LEN,
    )
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FFT_LEN) / FFT_LEN)
    out = MfccTables(
        window=np.asarray(dt.convert(hann, dt.Q15), dtype=np.int16),  # type: ignore[attr-defined]
        filter_pos=np.asarray(positions, dtype=np.uint32),
        filter_len=np.asarray(lengths, dtype=np.uint32),
        filter_coefs=np.asarray(coefs, dtype=np.int16),
        dct=np.asarray(
            mfcc.dctMatrix(dt.Q15, NUM_MFCC, NUM_MEL),  # type: ignore[attr-defined]
            dtype=np.int16,
        ),
    )
    for array in (out.window, out.filter_pos, out.filter_len, out.filter_coefs, out.dct):
        array.setflags(write=False)
    return out


class MfccFrontend:
    """``arm_mfcc_q15`` over 1 s clips: :meth:`features_q` gives int16 q8.7 MFCCs."""

    def __init__(self) -> None:
        dsp, _, _ = _dsp()
        t = tables()
        self._dsp = dsp
        self._instance = dsp.arm_mfcc_instance_q15()  # type: ignore[attr-defined]
        status = dsp.arm_mfcc_init_q15(  # type: ignore[attr-defined]
            self._instance,
            FFT_LEN,
            NUM_MEL,
            NUM_MFCC,
            t.dct,
            t.filter_pos,
            t.filter_len,
            t.filter_coefs,
            t.window,
        )
        if status != 0:
            raise UsageError(f"arm_mfcc_init_q15 failed with status {status}")
        self._tmp = np.zeros(2 * FFT_LEN, dtype=np.int32)

    def frame_q(self, frame: np.ndarray) -> np.ndarray:
        """MFCCs (q8.7 int16, ``NUM_MFCC``) of one ``FFT_LEN``-sample int16 frame."""
        frame = np.ascontiguousarray(frame, dtype=np.int16)
        if frame.shape != (FFT_LEN,):
            raise UsageError(f"a frame has {FFT_LEN} samples, got shape {frame.shape}")
        status, out = self._dsp.arm_mfcc_q15(self._instance, frame.copy(), self._tmp)  # type: ignore[attr-defined]
        if status != 0:
            raise UsageError(f"arm_mfcc_q15 failed with status {status}")
        return np.asarray(out, dtype=np.int16)

    def features_q(self, clip: np.ndarray) -> np.ndarray:
        """``(NUM_FRAMES, NUM_MFCC)`` int16 q8.7 MFCCs of a 1 s int16 clip."""
        clip = np.asarray(clip)
        if clip.dtype != np.int16 or clip.shape != (CLIP_SAMPLES,):
            raise UsageError(
                f"a clip is {CLIP_SAMPLES} int16 samples, got {clip.dtype} {clip.shape}"
            )
        out = np.empty((NUM_FRAMES, NUM_MFCC), dtype=np.int16)
        for i in range(NUM_FRAMES):
            out[i] = self.frame_q(clip[i * HOP : i * HOP + FFT_LEN])
        return out

    def features(self, clip: np.ndarray) -> np.ndarray:
        """Float32 MFCCs ``FEATURE_SHAPE`` (q8.7 / 128): the backbone's input."""
        return (self.features_q(clip).astype(np.float32) / (1 << MFCC_Q)).reshape(FEATURE_SHAPE)

    def batch(self, clips: np.ndarray) -> np.ndarray:
        """Float32 features ``(n, *FEATURE_SHAPE)`` of ``(n, CLIP_SAMPLES)`` int16 clips."""
        clips = np.asarray(clips)
        out = np.empty((len(clips), *FEATURE_SHAPE), dtype=np.float32)
        for i, clip in enumerate(clips):
            out[i] = self.features(clip)
        return out


def card_entry() -> dict[str, object]:
    """The ``frontend`` entry of a model card whose input is 1 s of raw audio: firmware
    built from such a card computes these features itself (``firmware build``), and the
    serial bridge sends it raw windows instead of features."""
    return {
        "kind": "mfcc-q15",
        "library": "cmsis-dsp 1.10.3",
        "sample_rate_hz": SAMPLE_RATE,
        "window_samples": CLIP_SAMPLES,
        "frame_samples": FFT_LEN,
        "hop_samples": HOP,
        "mel_filters": NUM_MEL,
        "coefficients": NUM_MFCC,
        "output_q": MFCC_Q,
    }


def card_takes_audio(card: object) -> bool:
    """Whether a model card's input is raw audio through this front end: its
    ``frontend`` entry, or (cards exported before it existed) a microphone model whose
    input is the front end's ``(1, 49, 10, 1)`` MFCCs."""
    if not isinstance(card, dict):
        return False
    entry = card.get("frontend")
    if isinstance(entry, dict):
        return entry.get("kind") == "mfcc-q15"
    shape = (card.get("input") or {}).get("shape") if isinstance(card.get("input"), dict) else None
    return card.get("sensor") == "microphone" and shape == [1, *FEATURE_SHAPE]
