"""Memory and cost report per model: linked flash/RAM, arena, head buffers, instructions.

For each model the firmware is generated and linked for the emulated Cortex-M4F (the
same code a Nano 33 BLE Sense runs), with the head's buffers sized exactly; flash and
RAM come from the linker map, instructions per inference and per SGD step are counted
in QEMU under ``-icount`` (deterministic; QEMU has no cycle model, so these are
instructions, not time). TFLM's own figures for the same model (tensor arena measured
with the TFLM Python interpreter, size of the .tflite it would keep in flash) sit
beside ours.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyfleet.device.head import HeadSpec, MLPHead
from tinyfleet.errors import InputFileError
from tinyfleet.firmware.codegen import generate_from_file
from tinyfleet.firmware.jobs import bench_job, run_job
from tinyfleet.firmware.toolchain import cmake_build

RAM_ORIGIN = 0x20000000


@dataclass(frozen=True)
class Board:
    name: str
    ram_bytes: int
    flash_bytes: int


BOARDS = {"nano33ble": Board("Arduino Nano 33 BLE Sense", 262144, 1048576)}


@dataclass(frozen=True)
class ModelReport:
    """One row of ``tinyfleet firmware report`` (bytes and instruction counts)."""

    model: str
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["operators"] = list(self.operators)
        data["head_layer_sizes"] = list(self.head_layer_sizes)
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


def report_model(model: str | Path, head: HeadSpec | None = None, reps: int = 3) -> ModelReport:
    """Generate, link for the Cortex-M4F, and measure one model in QEMU.

    ``model`` is a ``.tflite`` or a ``model_card.json``; a float-head card (no backbone)
    is measured with a pass-through stand-in for the backbone.
    """
    from tinyfleet.device.backbone import measure_arena_bytes
    from tinyfleet.firmware.codegen import generate_passthrough

    tflite, card_head = _resolve(Path(model))
    with tempfile.TemporaryDirectory(prefix="tinyfleet_report_") as tmp:
        work = Path(tmp)
        if tflite is not None:
            generated = generate_from_file(tflite, work / "model")
            spec = head or card_head or head_from_card(tflite, generated.output_size)
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
        build = cmake_build("qemu-mps2-an386", work / "build", work / "model", defines=defines)
        assert build.job_runner is not None and build.map_file is not None
        flash, ram = flash_and_ram(build.map_file.read_text())
        learner = MLPHead(spec, seed=0)
        x = np.linspace(-1.0, 1.0, spec.input_dim, dtype=np.float32)
        y: object = np.zeros(spec.output_dim, np.float32) if spec.loss == "mse" else 0
        result, _ = run_job(
            build.job_runner,
            bench_job(spec, learner.get_vector(), 0.01, x, y, reps),
            qemu=True,
            icount=True,
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
    return ModelReport(
        model=str(model),
        operators=generated.operators,
        flash_bytes=flash,
        ram_bytes=ram,
        arena_bytes=generated.arena_bytes,
        weight_bytes=generated.weight_bytes,
        tflm_arena_bytes=tflm_arena,
        tflite_bytes=len(data),
        head_layer_sizes=sizes,
        head_train_bytes=head_train_bytes(spec),
        insns_per_inference=int(insns[0]) if data else 0,
        insns_per_sgd_step=int(insns[1]),
        fits={
            key: flash <= board.flash_bytes and ram <= board.ram_bytes
            for key, board in BOARDS.items()
        },
    )


def _short(model: str) -> str:
    path = Path(model)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def format_table(rows: list[ModelReport]) -> str:
    header = (
        f"{'model':<28} {'flash':>8} {'ram':>8} {'arena':>7} {'tflm_arena':>10} "
        f"{'tflite':>8} {'head_ram':>8} {'insns/inf':>10} {'insns/sgd':>10}  fits"
    )
    lines = [header]
    for r in rows:
        fits = ",".join(k for k, ok in r.fits.items() if ok) or "none"
        lines.append(
            f"{_short(r.model):<28} {r.flash_bytes:>8} {r.ram_bytes:>8} {r.arena_bytes:>7} "
            f"{r.tflm_arena_bytes if r.tflm_arena_bytes is not None else '-':>10} "
            f"{r.tflite_bytes:>8} {r.head_train_bytes:>8} {r.insns_per_inference:>10} "
            f"{r.insns_per_sgd_step:>10}  {fits}"
        )
    return "\n".join(lines)
