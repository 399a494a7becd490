"""Backbone and head together in C: raw int8 images in, SGD on the C-computed embedding.

The device loop gets quantised images ('I' frames), runs the generated digits backbone,
dequantises its output and takes one head SGD step per image; the result must equal
the Python device (TFLM ``Int8Backbone.embed`` + ``MLPHead.sgd_step``) within 1e-5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfleet.device import wire
from tinyfleet.device.backbone import Int8Backbone, quantize
from tinyfleet.device.head import HeadSpec, MLPHead
from tinyfleet.device.tooling.modelcard import read_model_card
from tinyfleet.device.wire import MessageType
from tinyfleet.firmware.bridge import host_device, qemu_device
from tinyfleet.firmware.device_config import write_device_config
from tinyfleet.firmware.toolchain import cmake_build, missing_tools

pytestmark = pytest.mark.tf
N_IMAGES, LR = 40, 0.05


@pytest.fixture(scope="module")
def digits_devices(
    fixture_models: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[HeadSpec, dict[str, Path]]:
    model = fixture_models["digits"]
    card = read_model_card(model.path.parent / "model_card.json")
    spec = HeadSpec.from_dict(card["head"])
    root = tmp_path_factory.mktemp("fw_digits_device")
    write_device_config(spec, root / "cfg")
    out: dict[str, Path] = {}
    for kind, target in (("host", "host"), ("qemu", "qemu-mps2-an386")):
        if missing_tools(target):
            continue
        build = cmake_build(
            target, root / kind, model.model_dir, sanitize=kind == "host",
            device_config_dir=root / "cfg",
        )  # fmt: skip
        assert build.device is not None
        out[kind] = build.device
    return spec, out


def _stream() -> tuple[np.ndarray, np.ndarray]:
    from tinyfleet.simulations.usecases.digits import all_classes, all_images

    images, classes = all_images(), all_classes()
    rows = np.arange(0, len(images), len(images) // N_IMAGES)[:N_IMAGES]
    return images[rows], (classes[rows] % 5).astype(np.int64)


@pytest.mark.parametrize("kind", ["host", "qemu"])
def test_c_backbone_plus_head_learns_like_python(
    kind: str, fixture_models: Any, digits_devices: tuple[HeadSpec, dict[str, Path]]
) -> None:
    spec, devices = digits_devices
    if kind not in devices:
        pytest.skip(f"toolchain for the {kind} firmware absent")
    backbone = Int8Backbone(fixture_models["digits"].path.read_bytes())
    images, labels = _stream()
    head = MLPHead(spec, seed=5)
    theta = head.get_vector()
    for image, label in zip(images, labels, strict=True):
        head.sgd_step(backbone.embed(image), int(label), LR)
    task = wire.encode_message(
        MessageType.TRAIN, round=1, msg_id=42, device_id="nano-0001",
        fields={"k": N_IMAGES, "inner-lr": LR, "algorithm": "online"},
        arrays=[wire.float32_array("theta", theta)],
    )  # fmt: skip
    ctx = host_device if kind == "host" else qemu_device
    with ctx(devices[kind]) as link:
        link.send(b"T", task)
        for image, label in zip(images, labels, strict=True):
            raw = quantize(image, backbone.input_quant).reshape(-1).tobytes()
            link.send(b"I", raw + int(label).to_bytes(4, "little", signed=True))
        kind_byte, body = link.recv()
    assert kind_byte == b"R", body
    phi = wire.decode_message(body).arrays[0].to_float32()
    expected = head.get_vector()
    assert not np.allclose(expected, theta)
    assert float(np.max(np.abs(phi - expected))) <= 1e-5 * float(np.max(np.abs(expected)))
