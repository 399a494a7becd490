"""One firmware image for keyword audio: raw 16 kHz samples in, CMSIS-DSP MFCCs, the
generated int8 DS-CNN backbone and online head SGD in C, joining federated rounds.

The image is built by ``tinyfleet firmware build --model model_card.json`` from a kws
backbone exported (1 epoch) on a small espeak-ng corpus in the Speech Commands layout.
Against the Python device (cmsisdsp front end, TFLM interpreter, NumPy head):

* ``'X'`` probes: MFCCs, the int8 backbone input and the int8 embedding bit for bit;
* ``'A'`` frames (1 s of PCM each) after a ``'T'`` task: phi and the mean loss of the C
  head within 1e-5 (relative to the largest value) of the Python head's;
* a TinyReptile run over Mosquitto with the QEMU image as one device (the bridge sends it
  raw windows): the same final parameters as the all-Python run within 1e-5.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfleet.device import wire
from tinyfleet.device.head import HeadSpec, MLPHead
from tinyfleet.device.wire import MessageType
from tinyfleet.firmware.bridge import FirmwareTrainer, host_device, qemu_device
from tinyfleet.firmware.toolchain import missing_tools

pytestmark = [pytest.mark.tf, pytest.mark.firmware]
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "one", "two")
STEPS, LR = 6, 0.05


@dataclass(frozen=True)
class KwsFirmware:
    data_dir: str
    card: Path
    spec: HeadSpec
    devices: dict[str, Path]


@pytest.fixture(scope="module")
def kws_firmware(tmp_path_factory: pytest.TempPathFactory) -> KwsFirmware:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    pytest.importorskip("tensorflow")
    from tinyfleet.cli import main
    from tinyfleet.device.tooling.modelcard import read_model_card
    from tinyfleet.simulations.audio.corpus import CorpusSpec, generate
    from tinyfleet.simulations.export import export_use_case
    from tinyfleet.simulations.usecases import kws

    root = tmp_path_factory.mktemp("kws_fw")
    corpus = generate(root / "corpus", CorpusSpec(speakers=5, reps=2, words=WORDS), quiet=True)
    key = str(corpus.resolve())
    # Where `simulate kws --data-dir` looks for its backbone: exported here with 1 epoch.
    model = kws.model_dir(kws.kws_data(key), key)
    export_use_case("kws", model, data_dir=key, epochs=1)
    card = model / "model_card.json"
    spec = HeadSpec.from_dict(read_model_card(card)["head"])
    devices: dict[str, Path] = {}
    for kind, target in (("host", "host"), ("qemu", "qemu-mps2-an386")):
        if missing_tools(target):
            continue
        argv = ["firmware", "build", "--target", target, "--model", str(card),
                "--build-dir", str(root / kind)]  # fmt: skip
        if kind == "host":
            argv.append("--sanitize")
        assert main(argv) == 0
        suffix = "" if kind == "host" else ".elf"
        devices[kind] = root / kind / f"tinyfleet_device{suffix}"
        assert devices[kind].is_file()
    return KwsFirmware(key, card, spec, devices)


def _link(fw: KwsFirmware, kind: str) -> Any:
    if kind not in fw.devices:
        pytest.skip(f"toolchain for the {kind} firmware absent")
    if kind == "qemu" and shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm absent")
    return (host_device if kind == "host" else qemu_device)(fw.devices[kind])


def _clips(fw: KwsFirmware, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` held-out clips (speakers and words the backbone never saw), labels 0..4."""
    from tinyfleet.simulations.usecases import kws

    data = kws.kws_data(fw.data_dir)
    rows = data.split_rows("heldout")[:n]
    words = sorted({int(w) for w in data.data.word_of[rows]})
    labels = np.array([words.index(int(w)) % 5 for w in data.data.word_of[rows]], np.int64)
    return data.data.clips(rows), labels


def test_model_card_says_the_input_is_audio(kws_firmware: KwsFirmware) -> None:
    import json

    from tinyfleet.device.frontend import card_takes_audio

    card = json.loads(kws_firmware.card.read_text())
    assert card["frontend"]["kind"] == "mfcc-q15" and card["frontend"]["sample_rate_hz"] == 16000
    assert card_takes_audio(card)
    assert not card_takes_audio({**card, "frontend": None, "sensor": "camera"})


@pytest.mark.parametrize("kind", ["host", pytest.param("qemu", marks=pytest.mark.qemu)])
def test_probe_mfcc_input_and_embedding_are_bit_exact(kws_firmware: KwsFirmware, kind: str) -> None:
    from tinyfleet.device.backbone import Int8Backbone, quantize
    from tinyfleet.device.frontend import MfccFrontend

    backbone = Int8Backbone.from_file(kws_firmware.card.parent / "backbone.tflite")
    front = MfccFrontend()
    clips, _ = _clips(kws_firmware, 3)
    with _link(kws_firmware, kind) as link:
        for clip in clips:
            link.send(b"X", clip.astype("<i2").tobytes())
            got, body = link.recv()
            assert got == b"X", body
            assert len(body) == 490 * 2 + 490 + 32 + 8
            mfcc = np.frombuffer(body[:980], "<i2").reshape(49, 10)
            q_in = np.frombuffer(body[980:1470], np.int8)
            emb = np.frombuffer(body[1470:1502], np.int8)
            insns = np.frombuffer(body[1502:], "<u4")
            # host: no counter; QEMU without -icount: SysTick runs, the figure is not used
            assert kind == "qemu" or insns.tolist() == [0, 0]
            np.testing.assert_array_equal(mfcc, front.features_q(clip))
            expected_in = quantize(front.features(clip), backbone.input_quant).reshape(-1)
            np.testing.assert_array_equal(q_in, expected_in)
            golden = backbone.invoke_int8(expected_in)
            np.testing.assert_array_equal(emb, np.asarray(golden).reshape(-1))
        # a window of the wrong length is refused, and the device keeps serving
        link.send(b"X", b"\x01\x02" * 100)
        assert link.recv() == (b"E", b"audio window has the wrong size")


@pytest.mark.parametrize("kind", ["host", pytest.param("qemu", marks=pytest.mark.qemu)])
def test_raw_audio_steps_learn_like_python(kws_firmware: KwsFirmware, kind: str) -> None:
    from tinyfleet.device.backbone import Int8Backbone
    from tinyfleet.device.frontend import MfccFrontend

    backbone = Int8Backbone.from_file(kws_firmware.card.parent / "backbone.tflite")
    front = MfccFrontend()
    clips, labels = _clips(kws_firmware, STEPS)
    head = MLPHead(kws_firmware.spec, seed=3)
    theta = head.get_vector()
    losses = [head.sgd_step(backbone.embed(front.features(c)), int(y), LR)
              for c, y in zip(clips, labels, strict=True)]  # fmt: skip
    task = wire.encode_message(
        MessageType.TRAIN, round=1, msg_id=7, device_id="nano-kws-1",
        fields={"k": STEPS, "inner-lr": LR, "algorithm": "online"},
        arrays=[wire.float32_array("theta", theta)],
    )  # fmt: skip
    with _link(kws_firmware, kind) as link:
        link.send(b"A", clips[0].astype("<i2").tobytes() + b"\0\0\0\0")
        assert link.recv() == (b"E", b"sample without a task")
        link.send(b"T", task)
        for clip, label in zip(clips, labels, strict=True):
            link.send(b"A", clip.astype("<i2").tobytes() + int(label).to_bytes(4, "little"))
        got, body = link.recv()
    assert got == b"R", body
    reply = wire.decode_message(body)
    phi = reply.arrays[0].to_float32()
    expected = head.get_vector()
    assert not np.allclose(expected, theta)
    assert float(np.max(np.abs(phi - expected))) <= 1e-5 * float(np.max(np.abs(expected)))
    fields = reply.fields_dict()
    assert int(fields["sgd-steps"]) == STEPS
    mean_loss = float(np.mean([float(v) for v in losses]))
    assert abs(float(fields["loss"]) - mean_loss) <= 1e-5 * mean_loss


# Seed 1 picks device 1 (the firmware) in rounds 1 and 3 of 4.
SEED, DEVICES, ROUNDS, FIRMWARE_INDEX = 1, 3, 4, 1


@pytest.mark.qemu
@pytest.mark.mqtt
def test_qemu_kws_device_joins_federated_rounds(kws_firmware: KwsFirmware) -> None:
    from tinyfleet.device.head import flatten, init_params
    from tinyfleet.device.mqtt_client import RoundTaskHandler
    from tinyfleet.device.rounds import round_rng, run_local_round
    from tinyfleet.device.wire.contract import RoundPlan
    from tinyfleet.server.run import run_in_process
    from tinyfleet.server.strategies import TinyReptile
    from tinyfleet.simulations.clientapp import make_client_app
    from tinyfleet.simulations.fleet import Fleet
    from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet
    from tinyfleet.simulations.usecase import get_use_case

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed")
    use_case = get_use_case("kws", data_dir=kws_firmware.data_dir)
    spec = use_case.head_spec
    sim = Fleet(use_case, use_case.make_backbone())
    stream = sim.stream_for_device()
    plan = RoundPlan("online", inner_lr=LR, k=3)
    initial = flatten(init_params(spec, np.random.default_rng(SEED)))

    def strategy() -> TinyReptile:
        return TinyReptile(plan, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)

    with _link(kws_firmware, "qemu") as link:
        firmware = FirmwareTrainer(link, spec, audio=True)
        on_firmware = RoundTaskHandler(
            spec, stream, FIRMWARE_INDEX, trainer_for_task=firmware.for_task
        )

        def wrap(index: int, handler: Callable[..., Any]) -> Callable[..., Any]:
            return on_firmware if index == FIRMWARE_INDEX else handler

        with run_mqtt_fleet(spec, stream, DEVICES, wrap_handler=wrap, fleet="kws-fw") as fleet:
            got, _ = run_in_process(strategy(), fleet.client_call, DEVICES, initial, ROUNDS)
    expected, _ = run_in_process(
        strategy(), make_client_app(spec, stream), DEVICES, initial, ROUNDS
    )
    assert len(firmware.history) == 2, "the firmware device should answer rounds 1 and 3"
    for server_round, index, theta, phi in firmware.history:
        reference, _ = run_local_round(
            theta, spec, stream(SEED, index), plan, round_rng(SEED, index, server_round)
        )
        assert float(np.max(np.abs(phi - reference))) <= 1e-5 * float(np.max(np.abs(reference)))
    assert float(np.max(np.abs(got - expected))) <= 1e-5 * float(np.max(np.abs(expected)))


@pytest.mark.qemu
def test_report_gives_the_chained_image_costs(
    kws_firmware: KwsFirmware, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tinyfleet.cli import main

    if "qemu" not in kws_firmware.devices:
        pytest.skip("toolchain for the qemu firmware absent")
    argv = ["firmware", "report", str(kws_firmware.card), "--json", "--kernels", "dsp"]
    assert main(argv) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["fits"] == {"nano33ble": True}
    # one image: CMSIS-DSP MFCC + backbone + head loop + a 32 KB serial frame buffer
    assert 0 < row["audio_image_flash_bytes"] <= 1 << 20
    assert 64 * 1024 < row["audio_image_ram_bytes"] <= 256 * 1024
    assert row["audio_image_ram_bytes"] > row["ram_bytes"]
    # counted in that image under -icount: front end ~6 M, backbone ~ the job runner's
    assert 1_000_000 < row["insns_frontend_per_window"] < 20_000_000
    backbone, alone = row["insns_backbone_in_image"], row["insns_per_inference"]
    assert abs(backbone - alone) <= 0.05 * alone
    total = row["insns_frontend_per_window"] + backbone + row["insns_per_sgd_step"]
    assert row["realtime_factor_64mhz"] == pytest.approx(total / 64e6)
    assert row["realtime_factor_64mhz"] < 1.0
