"""End to end: firmware devices (host build, and QEMU's Cortex-M4F) behind the serial
bridge take part in TinyReptile and TinyMetaFed rounds over a real Mosquitto beside
Python devices."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfleet.device.head import HeadSpec, flatten, init_params
from tinyfleet.device.mqtt_client import RoundTaskHandler
from tinyfleet.device.rounds import round_rng, run_local_round
from tinyfleet.device.wire.contract import RoundPlan
from tinyfleet.firmware.bridge import FirmwareTrainer, FramedLink, host_device, qemu_device
from tinyfleet.firmware.device_config import write_device_config
from tinyfleet.firmware.toolchain import cmake_build, missing_tools
from tinyfleet.simulations.seeding import device_task_rng

SEED, DEVICES, ROUNDS = 7, 3, 10
FIRMWARE_INDEX = 1
PLAN = RoundPlan("online", inner_lr=0.02, k=5)
# TinyMetaFed: 2 local-only (reconstruction) steps on the C head, then 3 full steps; the
# Top-25% int8 update of the shared layers travels compressed over MQTT.
TMF_PLAN = RoundPlan(
    "online", 0.02, k=5, upload="delta", top_p=0.25, upload_int8=True, local_layers=1,
    recon_steps=2,
)  # fmt: skip


def _use_case() -> Any:
    from tinyfleet.simulations.usecase import get_use_case

    return get_use_case("sine")


def _stream(seed: int, index: int) -> Any:
    return _use_case().sample_task(device_task_rng(seed, index, "train"), "train")


@pytest.fixture(scope="module")
def device_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fw_device")
    config = root / "config"
    write_device_config(_use_case().head_spec, config)
    out: dict[str, Path] = {}
    if not missing_tools("host"):
        build = cmake_build("host", root / "host", None, sanitize=True, device_config_dir=config)
        assert build.device is not None
        out["host"] = build.device
    if not missing_tools("qemu-mps2-an386"):
        build = cmake_build("qemu-mps2-an386", root / "qemu", None, device_config_dir=config)
        assert build.device is not None
        out["qemu"] = build.device
    return out


@pytest.fixture(scope="module")
def update_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TinyMetaFed builds: the firmware keeps theta and encodes its own Top-P% int8 update."""
    root = tmp_path_factory.mktemp("fw_update")
    config = root / "config"
    write_device_config(_use_case().head_spec, config, update_top_p=TMF_PLAN.top_p)
    out: dict[str, Path] = {}
    if not missing_tools("host"):
        build = cmake_build("host", root / "host", None, sanitize=True, device_config_dir=config)
        assert build.device is not None
        out["host"] = build.device
    if not missing_tools("qemu-mps2-an386"):
        build = cmake_build("qemu-mps2-an386", root / "qemu", None, device_config_dir=config)
        assert build.device is not None
        out["qemu"] = build.device
    return out


def _federated_run(
    link: FramedLink, spec: HeadSpec, plan: RoundPlan = PLAN
) -> tuple[np.ndarray, np.ndarray, FirmwareTrainer]:
    from tinyfleet.server.run import run_in_process
    from tinyfleet.server.strategies import TinyReptile
    from tinyfleet.server.tinymetafed import TinyMetaFed
    from tinyfleet.simulations.clientapp import make_client_app
    from tinyfleet.simulations.mqtt_fleet import run_mqtt_fleet

    initial = flatten(init_params(spec, np.random.default_rng(SEED)))
    firmware = FirmwareTrainer(link, spec)
    on_firmware = RoundTaskHandler(
        spec,
        _stream,
        FIRMWARE_INDEX,
        trainer_for_task=firmware.for_task,
        upload_for_task=firmware.upload_for_task,
    )
    sent: list[Any] = []

    def record(task: Any) -> Any:  # what the firmware device publishes
        fields, arrays = on_firmware(task)
        sent.append((task.round, arrays[0]))
        return fields, arrays

    def wrap(index: int, handler: Callable[..., Any]) -> Callable[..., Any]:
        return record if index == FIRMWARE_INDEX else handler

    def strategy() -> TinyReptile:
        kind = TinyMetaFed if plan.upload == "delta" else TinyReptile
        return kind(plan, num_devices=DEVICES, seed=SEED, num_rounds=ROUNDS)

    with run_mqtt_fleet(spec, _stream, DEVICES, wrap_handler=wrap, fleet="fw-e2e") as fleet:
        got, _ = run_in_process(strategy(), fleet.client_call, DEVICES, initial, ROUNDS)
    expected, _ = run_in_process(
        strategy(), make_client_app(spec, _stream), DEVICES, initial, ROUNDS
    )
    firmware.sent = sent  # type: ignore[attr-defined]
    return got, expected, firmware


def _check(
    got: np.ndarray, expected: np.ndarray, firmware: FirmwareTrainer, plan: RoundPlan = PLAN
) -> None:
    spec = _use_case().head_spec
    assert firmware.history, "the firmware device was never picked"
    for server_round, index, theta, phi in firmware.history:
        reference, _ = run_local_round(
            theta, spec, _stream(SEED, index), plan, round_rng(SEED, index, server_round)
        )
        scale = float(np.max(np.abs(reference)))
        assert float(np.max(np.abs(phi - reference))) <= 1e-5 * scale
    scale = float(np.max(np.abs(expected)))
    assert float(np.max(np.abs(got - expected))) <= 1e-5 * scale


def _links(device_builds: dict[str, Path], kind: str) -> Iterator[FramedLink]:
    if kind not in device_builds:
        pytest.skip(f"toolchain for the {kind} firmware absent")
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed")
    ctx = host_device if kind == "host" else qemu_device
    with ctx(device_builds[kind]) as link:
        yield link


@pytest.mark.firmware
@pytest.mark.mqtt
def test_host_firmware_device_in_federated_run(device_builds: dict[str, Path]) -> None:
    for link in _links(device_builds, "host"):
        _check(*_federated_run(link, _use_case().head_spec))


@pytest.mark.qemu
@pytest.mark.mqtt
def test_qemu_firmware_device_in_federated_run(device_builds: dict[str, Path]) -> None:
    for link in _links(device_builds, "qemu"):
        _check(*_federated_run(link, _use_case().head_spec))


@pytest.mark.firmware
@pytest.mark.mqtt
def test_host_firmware_runs_tinymetafed_rounds(device_builds: dict[str, Path]) -> None:
    for link in _links(device_builds, "host"):
        _check(*_federated_run(link, _use_case().head_spec, TMF_PLAN), TMF_PLAN)


@pytest.mark.qemu
@pytest.mark.mqtt
def test_qemu_firmware_runs_tinymetafed_rounds(device_builds: dict[str, Path]) -> None:
    for link in _links(device_builds, "qemu"):
        _check(*_federated_run(link, _use_case().head_spec, TMF_PLAN), TMF_PLAN)


def _check_own_updates(got: np.ndarray, expected: np.ndarray, firmware: FirmwareTrainer) -> None:
    """A TinyMetaFed build: what it published is ITS update, the one Python would send."""
    from tinyfleet.device.rounds import upload_array

    spec = _use_case().head_spec
    sent = dict(firmware.sent)  # type: ignore[attr-defined]
    assert firmware.history and not firmware.updates  # every own update was forwarded
    for server_round, index, theta, _ in firmware.history:
        reference, _ = run_local_round(
            theta, spec, _stream(SEED, index), TMF_PLAN, round_rng(SEED, index, server_round)
        )
        mine = upload_array("0", theta, reference, spec, TMF_PLAN)
        own = sent[server_round]
        assert own.dtype == mine.dtype and own.indices is not None
        # C float32 vs numpy differ in the last bits (1e-5 of phi): same entries kept,
        # int8 values within one step.
        assert np.array_equal(own.indices, mine.indices)
        assert own.scale == pytest.approx(mine.scale, rel=1e-3)
        assert int(np.max(np.abs(own.values.astype(int) - mine.values.astype(int)))) <= 1
    # Against the all-Python run: within the int8 steps a few flipped values make.
    step = max(float(a.scale) for a in sent.values())
    assert float(np.max(np.abs(got - expected))) <= 2 * step


@pytest.mark.firmware
@pytest.mark.mqtt
def test_host_firmware_encodes_its_own_tinymetafed_update(update_builds: dict[str, Path]) -> None:
    for link in _links(update_builds, "host"):
        _check_own_updates(*_federated_run(link, _use_case().head_spec, TMF_PLAN))


@pytest.mark.qemu
@pytest.mark.mqtt
def test_qemu_firmware_encodes_its_own_tinymetafed_update(update_builds: dict[str, Path]) -> None:
    for link in _links(update_builds, "qemu"):
        _check_own_updates(*_federated_run(link, _use_case().head_spec, TMF_PLAN))


@pytest.mark.firmware
def test_firmware_local_only_steps_leave_the_shared_layers_alone(
    device_builds: dict[str, Path],
) -> None:
    """recon-steps = k: only the output layer learns, the layers below stay bit-exact."""
    from tinyfleet.device import wire
    from tinyfleet.device.rounds import local_param_count
    from tinyfleet.device.wire import MessageType

    if "host" not in device_builds:
        pytest.skip("host toolchain absent")
    spec = _use_case().head_spec
    theta = flatten(init_params(spec, np.random.default_rng(0)))
    shared = spec.num_params - local_param_count(spec, 1)
    plan = RoundPlan("online", 0.1, k=3, upload="delta", local_layers=1, recon_steps=3)
    samples = [np.array([0.5 * i - 1.0, np.sin(0.5 * i)], dtype="<f4") for i in range(3)]
    with host_device(device_builds["host"]) as link:
        fields = {"k": 3, "inner-lr": 0.1, **plan.to_config()}
        task = wire.encode_message(
            MessageType.TRAIN, round=1, msg_id=5, device_id="fw-0001", fields=fields,
            arrays=[wire.float32_array("theta", theta)],
        )  # fmt: skip
        link.send(b"T", task)
        for sample in samples:
            link.send(b"S", sample.tobytes())
        kind, body = link.recv()
        assert kind == b"R", body
        phi = wire.decode_message(body).arrays[0].to_float32()
        # bad reconstruction settings are refused, not run
        bad = {**fields, "recon-steps": 4}
        link.send(b"T", wire.encode_message(
            MessageType.TRAIN, round=2, msg_id=6, device_id="fw-0001", fields=bad,
            arrays=[wire.float32_array("theta", theta)],
        ))  # fmt: skip
        kind, body = link.recv()
        assert kind == b"E" and b"recon-steps" in body
    assert phi[:shared].tobytes() == theta[:shared].tobytes()
    assert not np.array_equal(phi[shared:], theta[shared:])

    class _Fixed:
        def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            s = samples[self.i]
            self.i += 1
            return s[None, :1], s[None, 1:]

        i = 0

    reference, _ = run_local_round(theta, spec, _Fixed(), plan, np.random.default_rng(0))
    assert float(np.max(np.abs(phi - reference))) <= 1e-5 * float(np.max(np.abs(reference)))


@pytest.mark.firmware
def test_firmware_refuses_a_batch_task(device_builds: dict[str, Path]) -> None:
    from tinyfleet.device import wire
    from tinyfleet.device.wire import MessageType

    if "host" not in device_builds:
        pytest.skip("host toolchain absent")
    spec = _use_case().head_spec
    theta = flatten(init_params(spec, np.random.default_rng(0)))
    with host_device(device_builds["host"]) as link:
        # a task whose array does not fit the compiled head is refused, not crashed on
        bad = wire.encode_message(
            MessageType.TRAIN, round=1, msg_id=1, device_id="fw-0001",
            fields={"k": 2, "inner-lr": 0.1}, arrays=[wire.float32_array("theta", theta[:10])],
        )  # fmt: skip
        link.send(b"T", bad)
        kind, body = link.recv()
        assert kind == b"E" and b"does not fit" in body
        link.send(b"T", b"garbage")
        kind, body = link.recv()
        assert (kind, body) == (b"E", b"truncated")
        # and a good task still works afterwards
        good = wire.encode_message(
            MessageType.TRAIN, round=1, msg_id=2, device_id="fw-0001",
            fields={"k": 1, "inner-lr": 0.1}, arrays=[wire.float32_array("theta", theta)],
        )  # fmt: skip
        link.send(b"T", good)
        link.send(b"S", np.array([0.5, 1.0], dtype="<f4").tobytes())
        kind, body = link.recv()
        assert kind == b"R"
        reply = wire.decode_message(body)
        assert reply.msg_id == 2 and reply.arrays[0].to_float32().shape == theta.shape


def test_firmware_device_description_follows_the_shared_format() -> None:
    from tinyfleet.firmware.bridge import firmware_description
    from tinyfleet.firmware.codegen import SUPPORTED_OPERATORS

    desc = firmware_description("nano33-0001", "default", "nano33ble")
    assert set(desc) == {
        "device_id", "fleet", "protocol_version", "board", "mcu", "cpu", "clock_hz",
        "ram_bytes", "flash_bytes", "sensors", "firmware", "operators",
    }  # fmt: skip
    assert desc["board"] == "Arduino Nano 33 BLE Sense" and desc["ram_bytes"] == 262144
    assert desc["operators"] == sorted(SUPPORTED_OPERATORS)
    assert desc["firmware"] == {"name": "tinyfleet-fw", "version": "0.1.0"}
