"""Memory and cost report per model: linked flash/RAM, arena, head buffers, instructions.

For each model the firmware is generated and linked for one QEMU target of the target
table (default the Cortex-M4F, the core a Nano 33 BLE Sense has) and one kernel set,
with the head's buffers sized exactly; flash and RAM come from the linker map,
instructions per inference and per SGD step are counted in QEMU under ``-icount``
(deterministic; QEMU has no cycle model, so these are instructions, not time). TFLM's
own figures for the same model (tensor arena measured with the TFLM Python
interpreter, size of the .tflite it would keep in flash) sit beside ours.

Energy on the Nano 33 BLE Sense's nRF52840 is estimated as instructions x
:data:`NRF52840_NJ_PER_CYCLE`, taking one instruction as one cycle (a lower bound:
loads and taken branches take 2 cycles on a Cortex-M4): the nRF52840 Product
Specification v1.7, section 5.4.1 "CPU", gives 52 uA/MHz (3.3 mA at 64 MHz) running
CoreMark from flash with the DC/DC regulator at 3 V, i.e. 3 V x 52 uA / 1 MHz =
0.156 nJ per cycle.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.device.boards import NANO33BLE
from tinyfleet.device.head import HeadSpec, MLPHead
from tinyfleet.errors import InputFileError, UsageError
from tinyfleet.firmware.codegen import generate_from_file
from tinyfleet.firmware.jobs import bench_job, run_job
from tinyfleet.firmware.targets import DEFAULT_QEMU_TARGET, Target, get_target
from tinyfleet.firmware.toolchain import cmake_build
from tinyfleet.firmware.validate import check_head_input

RAM_ORIGIN = 0x20000000
#: nRF52840 PS v1.7 s5.4.1: 52 uA/MHz (CoreMark, flash, DC/DC) at 3 V
NRF52840_NJ_PER_CYCLE = 3.0 * 52e-6 / 1e6 * 1e9


#: The boards a report checks a model against (rows of the one board table).
BOARDS = {"nano33ble": NANO33BLE}


@dataclass(frozen=True)
class ModelReport:
    """One row of ``tinyfleet firmware report`` (bytes and instruction counts)."""

    model: str
    target: str
    kernels: str
    operators: tuple[str, ...]
    flash_bytes: int
    ram_bytes: int
    arena_bytes: int
    weight_bytes: int
    tflm_arena_bytes: int | None
    tflite_bytes: int
    head_layer_sizes: tuple[int, ...]
    head_train_bytes: int
    insns_per_inference: int
    insns_per_sgd_step: int
    fits: dict[str, bool]
    macs_per_inference: int = 0
    #: nRF52840 estimate (module docstring): microjoules
    energy_uj_per_inference: float = 0.0
    energy_uj_per_sgd_step: float = 0.0
    #: audio cards (input = 1 s of raw audio): the one image that chains the CMSIS-DSP
    #: front end, the backbone and the head (the device loop): its linked size, and
    #: instructions per 1 s window counted in that image (max over the probe windows)
    audio_image_flash_bytes: int = 0
    audio_image_ram_bytes: int = 0
    insns_frontend_per_window: int = 0
    insns_backbone_in_image: int = 0
    #: (front end + backbone + one SGD step) / 64 MHz, one instruction per cycle
    realtime_factor_64mhz: float = 0.0

    @property
    def insns_per_mac(self) -> float:
        return (
            self.insns_per_inference / self.macs_per_inference if self.macs_per_inference else 0.0
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["operators"] = list(self.operators)
        data["head_layer_sizes"] = list(self.head_layer_sizes)
        data["insns_per_mac"] = round(self.insns_per_mac, 3)
        return data


def map_sections(map_text: str) -> dict[str, tuple[int, int]]:
    """Output sections of a GNU ld map: name -> (address, size)."""
    start = map_text.find("Linker script and memory map")
    body = map_text[start:] if start >= 0 else map_text
    pattern = re.compile(r"^(\.[\w.]+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)", re.MULTILINE)
    sections: dict[str, tuple[int, int]] = {}
    for name, addr, size in pattern.findall(body):
        sections.setdefault(name, (int(addr, 16), int(size, 16)))
    return sections


def flash_and_ram(map_text: str, ram_origin: int = RAM_ORIGIN) -> tuple[int, int]:
    """(flash, RAM) bytes: flash holds code, constants and .data's initial values;
    RAM holds .data, .bss (arena, head buffers) and the stack."""
    flash = ram = 0
    for name, (addr, size) in map_sections(map_text).items():
        if name.startswith((".debug", ".comment", ".ARM.attributes")):
            continue
        if addr >= ram_origin:
            ram += size
            if name == ".data":
                flash += size
        else:
            flash += size
    return flash, ram


def head_from_card(tflite: Path, output_size: int) -> HeadSpec:
    """The head of ``model_card.json`` beside the model, else ``(output_size, 5)`` relu/CE."""
    card = tflite.parent / "model_card.json"
    if card.exists():
        try:
            head = json.loads(card.read_text()).get("head")
        except (OSError, json.JSONDecodeError) as error:
            raise InputFileError(f"cannot read {card}: {error}") from None
        if isinstance(head, dict) and head.get("layer_sizes"):
            return HeadSpec.from_dict(head)
    return HeadSpec((output_size, 5), "relu", "softmax_ce")


def head_train_bytes(spec: HeadSpec) -> int:
    """Bytes of the C head in RAM: parameters plus scratch (activations, two deltas)."""
    sizes = spec.layer_sizes
    return 4 * (spec.num_params + sum(sizes[1:]) + 2 * max(sizes))


def _resolve(model: Path) -> tuple[Path | None, HeadSpec | None]:
    """A .tflite, or a model_card.json (its tflite_file, or none for a float head)."""
    if model.suffix != ".json":
        return model, None
    try:
        card = json.loads(model.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputFileError(f"cannot read model card {model}: {error}") from None
    head = card.get("head") if isinstance(card, dict) else None
    spec = HeadSpec.from_dict(head) if isinstance(head, dict) else None
    tflite = card.get("tflite_file") if isinstance(card, dict) else None
    if tflite is None and spec is None:
        raise InputFileError(f"model card {model} has neither a tflite_file nor a head")
    return (model.parent / str(tflite) if tflite else None), spec


def report_model(
    model: str | Path,
    head: HeadSpec | None = None,
    reps: int = 3,
    target: str = DEFAULT_QEMU_TARGET,
    kernels: str | None = None,
) -> ModelReport:
    """Generate, link for ``target`` with ``kernels`` (default: the target's set), and
    measure one model in QEMU.

    ``model`` is a ``.tflite`` or a ``model_card.json``; a float-head card (no backbone)
    is measured with a pass-through stand-in for the backbone. A head whose input size
    is not the backbone's output size is an error.
    """
    from tinyfleet.device.tooling.arena import measure_arena_bytes
    from tinyfleet.device.tooling.modelcard import layer_costs
    from tinyfleet.device.tooling.tflite_model import load_tflite
    from tinyfleet.firmware.codegen import generate_passthrough

    board = get_target(target)
    # A board's instructions are counted on its QEMU twin (same core, same flags); its
    # flash and RAM are those of the device-loop image it runs.
    row = get_target(board.measured_on) if board.measured_on else board
    if row.qemu_machine is None:
        raise UsageError(f"target {target} does not run in QEMU; choose a qemu-* target")
    kernels = kernels or row.kernels
    tflite, card_head = _resolve(Path(model))
    with tempfile.TemporaryDirectory(prefix="tinyfleet_report_") as tmp:
        work = Path(tmp)
        if tflite is not None:
            generated = generate_from_file(tflite, work / "model", ram_bytes=row.ram_bytes)
            spec = head or card_head or head_from_card(tflite, generated.output_size)
            check_head_input(generated.output_size, spec.input_dim)
        else:
            assert card_head is not None
            spec = head or card_head
            generated = generate_passthrough(spec.input_dim)
            generated.write(work / "model")
        sizes = spec.layer_sizes
        defines = {
            "TINYFLEET_JOB_MAX_PARAMS": spec.num_params,
            "TINYFLEET_JOB_MAX_WIDTH": max(sizes),
            "TINYFLEET_JOB_MAX_SCRATCH": sum(sizes[1:]) + 2 * max(sizes),
            "TINYFLEET_JOB_MAX_SAMPLES": 1,
        }
        audio = tflite is not None and row.device_loop and _takes_audio(Path(model), tflite)
        device_config = frontend_dir = None
        if audio:
            from tinyfleet.firmware.device_config import write_device_config
            from tinyfleet.firmware.frontend import write_cmake

            device_config = write_device_config(spec, work / "device").parent
            frontend_dir = write_cmake(work / "frontend").parent
        build = cmake_build(
            row.name, work / "build", work / "model", defines=defines, kernels=kernels,
            device_config_dir=device_config, frontend_dir=frontend_dir,
        )  # fmt: skip
        assert build.job_runner is not None and build.map_file is not None
        flash, ram = flash_and_ram(build.map_file.read_text(), row.ram_origin)
        if board is not row:
            flash, ram = _board_image(board, spec, work, kernels, tflite is not None)
        image: dict[str, int] = {}
        if audio and build.device is not None:
            image = _measure_audio_image(build.device, row.qemu_machine, row.ram_origin)
        learner = MLPHead(spec, seed=0)
        x = np.linspace(-1.0, 1.0, spec.input_dim, dtype=np.float32)
        y: object = np.zeros(spec.output_dim, np.float32) if spec.loss == "mse" else 0
        result, _ = run_job(
            build.job_runner,
            bench_job(spec, learner.get_vector(), 0.01, x, y, reps),
            qemu=True,
            icount=True,
            machine=row.qemu_machine,
        )
    insns = np.frombuffer(result, dtype="<u4")
    data = tflite.read_bytes() if tflite is not None else b""
    tflm_arena: int | None = None
    if data:
        try:
            # the device package's measurement: bisection in child processes, since
            # TFLM can crash on a too-small arena
            tflm_arena = measure_arena_bytes(data)
        except Exception:  # noqa: BLE001 - the TFLM figure is a comparison, not a requirement
            tflm_arena = None
    macs = sum(c.macs for c in layer_costs(load_tflite(tflite))) if tflite is not None else 0
    per_inf = int(insns[0]) if data else 0
    # an audio card must fit as the chained image too (front end + backbone + head loop)
    fit_flash, fit_ram = max(flash, image.get("flash", 0)), max(ram, image.get("ram", 0))
    window = image.get("frontend", 0) + image.get("backbone", 0) + int(insns[1])
    return ModelReport(
        model=str(model),
        target=target,
        kernels=kernels,
        operators=generated.operators,
        flash_bytes=flash,
        ram_bytes=ram,
        arena_bytes=generated.arena_bytes,
        weight_bytes=generated.weight_bytes,
        tflm_arena_bytes=tflm_arena,
        tflite_bytes=len(data),
        head_layer_sizes=sizes,
        head_train_bytes=head_train_bytes(spec),
        insns_per_inference=per_inf,
        insns_per_sgd_step=int(insns[1]),
        macs_per_inference=macs,
        energy_uj_per_inference=per_inf * NRF52840_NJ_PER_CYCLE / 1000,
        energy_uj_per_sgd_step=int(insns[1]) * NRF52840_NJ_PER_CYCLE / 1000,
        fits={
            key: fit_flash <= board.flash_bytes and fit_ram <= board.ram_bytes
            for key, board in BOARDS.items()
        },
        audio_image_flash_bytes=image.get("flash", 0),
        audio_image_ram_bytes=image.get("ram", 0),
        insns_frontend_per_window=image.get("frontend", 0),
        insns_backbone_in_image=image.get("backbone", 0),
        realtime_factor_64mhz=window / CLOCK_HZ if image else 0.0,
    )


def _board_image(
    board: Target, spec: HeadSpec, work: Path, kernels: str, with_model: bool
) -> tuple[int, int]:
    """(flash, RAM) of the device-loop image for ``board`` (checked like `flash` does);
    a float-head card's image has no backbone, as `build` makes it."""
    from tinyfleet.firmware.device_config import write_device_config
    from tinyfleet.firmware.flash import check_image

    write_device_config(spec, work / "device")
    build = cmake_build(
        board.name, work / "board", work / "model" if with_model else None,
        device_config_dir=work / "device", kernels=kernels,
    )  # fmt: skip
    assert build.device is not None
    info = check_image(build.device, board)
    return info.flash_bytes, info.ram_bytes


#: the Nano 33 BLE Sense's nRF52840 clock
CLOCK_HZ = 64_000_000
PROBE_WINDOWS = 4


def _takes_audio(model: Path, tflite: Path) -> bool:
    from tinyfleet.device.frontend import card_takes_audio

    card = model if model.suffix == ".json" else tflite.parent / "model_card.json"
    try:
        return card_takes_audio(json.loads(card.read_text()))
    except (OSError, json.JSONDecodeError):
        return False


def _probe_windows() -> np.ndarray:
    """1 s windows for the cost probe: speech-band tones, a chirp, noise and silence
    (the front end's work hardly depends on the samples; the maximum is reported)."""
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    windows = [
        6000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1800 * t),
        6000 * np.sin(2 * np.pi * (100 * t + 3000 * t**2)),
        3000 * rng.standard_normal(16_000),
        np.zeros(16_000),
    ]
    return np.stack([np.round(w).astype(np.int16) for w in windows[:PROBE_WINDOWS]])


def _measure_audio_image(elf: Path, machine: str | None, ram_origin: int) -> dict[str, int]:
    """Flash/RAM of the chained device image (its linker map) and, counted in it under
    QEMU -icount through its serial link ('X' probes), the instructions of the front end
    and of the backbone per 1 s window (max over :func:`_probe_windows`)."""
    from tinyfleet.firmware.bridge import qemu_device

    assert machine is not None
    flash, ram = flash_and_ram((elf.parent / "tinyfleet_device.map").read_text(), ram_origin)
    counts = []
    with qemu_device(elf, machine=machine, icount=True) as link:
        for window in _probe_windows():
            link.send(b"X", window.astype("<i2").tobytes())
            kind, body = link.recv()
            if kind != b"X":
                raise UsageError(f"the audio image refused a probe: {body[:80]!r}")
            counts.append(np.frombuffer(body[-8:], dtype="<u4"))
    worst = np.max(np.stack(counts), axis=0)
    return {"flash": flash, "ram": ram, "frontend": int(worst[0]), "backbone": int(worst[1])}


def _short(model: str) -> str:
    path = Path(model)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def format_table(rows: list[ModelReport]) -> str:
    header = (
        f"{'model':<24} {'target':<16} {'kernels':<9} {'flash':>7} {'ram':>7} {'arena':>6} "
        f"{'tflm_arena':>10} {'head_ram':>8} {'insns/inf':>10} {'insns/MAC':>9} "
        f"{'insns/sgd':>9} {'uJ/inf':>7} {'uJ/sgd':>7}  fits"
    )
    lines = [header]
    for r in rows:
        fits = ",".join(k for k, ok in r.fits.items() if ok) or "none"
        lines.append(
            f"{_short(r.model):<24} {r.target:<16} {r.kernels:<9} {r.flash_bytes:>7} "
            f"{r.ram_bytes:>7} {r.arena_bytes:>6} "
            f"{r.tflm_arena_bytes if r.tflm_arena_bytes is not None else '-':>10} "
            f"{r.head_train_bytes:>8} {r.insns_per_inference:>10} {r.insns_per_mac:>9.2f} "
            f"{r.insns_per_sgd_step:>9} {r.energy_uj_per_inference:>7.2f} "
            f"{r.energy_uj_per_sgd_step:>7.2f}  {fits}"
        )
    for r in rows:
        if r.insns_frontend_per_window:
            lines.append(
                f"{_short(r.model)} ({r.target}, {r.kernels}): one image with the audio front "
                f"end: flash {r.audio_image_flash_bytes} B, RAM {r.audio_image_ram_bytes} B; "
                f"per 1 s window: front end {r.insns_frontend_per_window} + backbone "
                f"{r.insns_backbone_in_image} + SGD step {r.insns_per_sgd_step} instructions; "
                f"real-time factor at 64 MHz {r.realtime_factor_64mhz:.3f}"
            )
    lines.append(
        f"energy: nRF52840 at {NRF52840_NJ_PER_CYCLE:.3f} nJ/cycle (PS v1.7 s5.4.1, 52 uA/MHz "
        "at 3 V), one instruction counted as one cycle (a lower bound)"
    )
    return "\n".join(lines)
