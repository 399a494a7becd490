"""The serial bridge's raw-audio path without firmware: which cards take audio, the
'A' frame bytes, and the refusals (no TensorFlow, no toolchain)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyfleet.device import wire
from tinyfleet.device.frontend import card_entry, card_takes_audio
from tinyfleet.device.head import HeadSpec
from tinyfleet.device.wire import MessageType
from tinyfleet.errors import UsageError
from tinyfleet.firmware.bridge import FirmwareTrainer, FramedLink, _audio_bytes
from tinyfleet.firmware.framing import decode_frame

SPEC = HeadSpec((32, 32, 5), "relu", "softmax_ce")


def test_audio_frame_body_is_pcm_then_label() -> None:
    pcm = (np.arange(16_000) - 8000).astype(np.int16)
    body = _audio_bytes(SPEC, pcm, 3)
    assert len(body) == 32_004
    np.testing.assert_array_equal(np.frombuffer(body[:32_000], "<i2"), pcm)
    assert body[32_000:] == (3).to_bytes(4, "little")
    with pytest.raises(UsageError, match="16000 int16 samples"):
        _audio_bytes(SPEC, pcm[:8000], 3)
    with pytest.raises(UsageError, match="16000 int16 samples"):
        _audio_bytes(SPEC, pcm.astype(np.float32), 3)


def test_which_cards_take_audio() -> None:
    mfcc_input = {"shape": [1, 49, 10, 1], "dtype": "int8"}
    assert card_takes_audio({"frontend": card_entry(), "sensor": "microphone"})
    # kws cards exported before the frontend entry existed
    assert card_takes_audio({"sensor": "microphone", "input": mfcc_input})
    assert not card_takes_audio({"sensor": "camera", "input": mfcc_input})
    assert not card_takes_audio({"sensor": "microphone", "input": {"shape": [1, 8, 8, 1]}})
    assert not card_takes_audio({"frontend": {"kind": "log-mel"}, "sensor": "microphone"})
    assert not card_takes_audio(None)


def test_bridge_cli_reads_the_kws_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyfleet.simulations.bridge_cli import _takes_audio

    monkeypatch.setenv("TINYFLEET_KWS_MODEL_DIR", str(tmp_path))
    card = {"kind": "int8-backbone+float-head", "frontend": card_entry(), "sensor": "microphone"}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    assert _takes_audio("kws") and not _takes_audio("sine")
    card["frontend"], card["sensor"] = None, "camera"
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    assert not _takes_audio("kws")


class _FeaturesOnly:
    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n, 32), np.float32), np.zeros(n, np.int64)


def _task() -> wire.WireMessage:
    """A one-step TRAIN task for device fw-0001 from theta = 0."""
    return wire.decode_message(
        wire.encode_message(
            MessageType.TRAIN,
            round=1,
            msg_id=1,
            device_id="fw-0001",
            fields={"k": 1, "inner-lr": 0.1},
            arrays=[wire.float32_array("theta", np.zeros(SPEC.num_params, np.float32))],
        )
    )


def test_audio_trainer_refuses_a_stream_without_audio() -> None:
    import os

    from tinyfleet.device.wire.contract import RoundPlan

    read_fd, write_fd = os.pipe()
    try:
        trainer = FirmwareTrainer(FramedLink(read_fd, write_fd, 1.0), SPEC, audio=True)
        task = _task()
        train = trainer.for_task(task)
        with pytest.raises(UsageError, match="has none"):
            train(
                np.zeros(SPEC.num_params, np.float32),
                RoundPlan("online", inner_lr=0.1, k=1),
                _FeaturesOnly(),
                np.random.default_rng(0),
            )
        # refused before anything went to the firmware
        os.set_blocking(read_fd, False)
        with pytest.raises(BlockingIOError):
            os.read(read_fd, 1 << 16)
    finally:
        os.close(read_fd)
        os.close(write_fd)


class _Speaker(_FeaturesOnly):
    def sample_audio(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(-3000, 3000, (n, 16_000)).astype(np.int16), np.full(n, 4)


def test_audio_trainer_sends_the_task_then_raw_windows() -> None:
    import os

    from tinyfleet.device.wire.contract import RoundPlan
    from tinyfleet.firmware.framing import encode_frame

    to_fw_r, to_fw_w = os.pipe()
    from_fw_r, from_fw_w = os.pipe()
    try:
        os.write(from_fw_w, encode_frame(b"Eno room"))  # the "firmware" refuses
        trainer = FirmwareTrainer(FramedLink(from_fw_r, to_fw_w, 5.0), SPEC, audio=True)
        task = _task()
        # k = 1: the 'T' and 'A' frames (~37 KB) fit the pipe's buffer unread
        with pytest.raises(UsageError, match="no room"):
            trainer.for_task(task)(
                np.zeros(SPEC.num_params, np.float32),
                RoundPlan("online", inner_lr=0.1, k=1),
                _Speaker(),
                np.random.default_rng(0),
            )
        sent = b""
        os.set_blocking(to_fw_r, False)
        while True:
            try:
                sent += os.read(to_fw_r, 1 << 16)
            except BlockingIOError:
                break
        frames = [decode_frame(f) for f in sent.split(b"\0") if f]
        assert [f[:1] for f in frames] == [b"T", b"A"]
        expected, labels = _Speaker().sample_audio(1, np.random.default_rng(0))
        for frame, pcm in zip(frames[1:], expected, strict=True):
            assert frame[1:] == pcm.astype("<i2").tobytes() + (4).to_bytes(4, "little")
        assert labels.tolist() == [4]
    finally:
        for fd in (to_fw_r, to_fw_w, from_fw_r, from_fw_w):
            os.close(fd)
