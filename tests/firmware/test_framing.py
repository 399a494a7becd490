"""Serial framing: Python twin round-trips; corruption is detected; the C device skips noise."""

from __future__ import annotations

import binascii
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyfleet.firmware.framing import FrameError, cobs_encode, decode_frame, encode_frame


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_frame_roundtrip_and_no_inner_zeros(payload: bytes) -> None:
    frame = encode_frame(payload)
    assert frame.endswith(b"\x00") and 0 not in frame[:-1]
    assert decode_frame(frame[:-1]) == payload
    assert len(frame) <= len(payload) + 2 + (len(payload) + 2) // 254 + 2


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_frame_size_bound_is_what_the_ram_model_counts(payload: bytes) -> None:
    """The device's reply frame buffer (``cobs_frame_bytes``, = the firmware's
    ``tinyfleet_frame_max_encoded``) holds every frame; all-0xFF payloads fill it."""
    from tinyfleet.device.learner import cobs_frame_bytes

    assert len(encode_frame(payload)) <= cobs_frame_bytes(len(payload))
    full = b"\xff" * len(payload)
    assert len(encode_frame(full)) <= cobs_frame_bytes(len(full))
    if len(full) % 254 < 250:  # away from a block boundary the bound is exact
        assert len(encode_frame(full)) >= cobs_frame_bytes(len(full)) - 1


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_single_byte_corruption_is_detected(payload: bytes, data: st.DataObject) -> None:
    body = bytearray(encode_frame(payload)[:-1])
    i = data.draw(st.integers(0, len(body) - 1))
    body[i] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(FrameError):
        assert decode_frame(bytes(body)) != payload


def test_crc_is_ccitt_false_and_cobs_known_vector() -> None:
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1
    # Wikipedia's COBS examples
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255)) + b"\x01"


@pytest.mark.firmware
def test_c_device_resynchronises_after_line_noise(tmp_path_factory: pytest.TempPathFactory) -> None:
    import numpy as np

    from tinyfleet.device import wire
    from tinyfleet.device.head import HeadSpec
    from tinyfleet.device.wire import MessageType
    from tinyfleet.firmware.bridge import host_device
    from tinyfleet.firmware.device_config import write_device_config
    from tinyfleet.firmware.toolchain import cmake_build, missing_tools

    if missing_tools("host"):
        pytest.skip("host toolchain absent")
    spec = HeadSpec((2, 3), "relu", "softmax_ce")
    root = tmp_path_factory.mktemp("fw_noise")
    write_device_config(spec, root / "cfg")
    build = cmake_build("host", root / "b", None, sanitize=True, device_config_dir=root / "cfg")
    assert build.device is not None
    with host_device(build.device) as link:
        import os

        # garbage, a frame with a bad CRC, then a valid task and sample
        os.write(link.write_fd, b"\x13\x37garbage\x00\xff\xff\xff\x00")
        bad = bytearray(encode_frame(b"T" + b"x" * 40))
        bad[3] ^= 0x40
        os.write(link.write_fd, bytes(bad))
        task = wire.encode_message(
            MessageType.TRAIN, round=4, msg_id=9, device_id="fw-0000",
            fields={"k": 1, "inner-lr": 0.5, "algorithm": "online"},
            arrays=[wire.float32_array("theta", np.zeros(spec.num_params, np.float32))],
        )  # fmt: skip
        link.send(b"T", task)
        link.send(b"S", np.array([1.0, -1.0], "<f4").tobytes() + (2).to_bytes(4, "little"))
        kind, body = link.recv()
    assert kind == b"R"
    reply = wire.decode_message(body)
    phi = reply.arrays[0].to_float32()
    # from zero weights: softmax is uniform, so b -= lr * (1/3 - onehot(2))
    np.testing.assert_allclose(phi[-3:], [-0.5 / 3, -0.5 / 3, 0.5 * 2 / 3], rtol=1e-6)
    assert reply.fields_dict()["loss"] == pytest.approx(np.log(3.0), rel=1e-6)
