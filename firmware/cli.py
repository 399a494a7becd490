"""Subcommands of ``tinyfleet`` owned by tinyfleet.firmware: ``firmware ...``."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from tinyfleet.errors import InputFileError, UsageError

DEFAULT_BUILD_ROOT = Path("build")
# The target table's names, listed here so that `--help` needs no import of it.
TARGET_NAMES = (
    "host", "qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505",
    "qemu-mps3-an547", "nano33ble",
)  # fmt: skip
QEMU_TARGET_NAMES = tuple(t for t in TARGET_NAMES if t.startswith("qemu-"))


def register(subparsers: Any) -> None:
    """Add ``tinyfleet firmware`` to the tinyfleet parser."""
    fw = subparsers.add_parser(
        "firmware",
        help="generate, build, run and measure the C firmware",
        description=(
            "Firmware for Cortex-M boards: C99 int8 inference generated from a .tflite "
            "(bit-exact with TFLite Micro), a float32 head that learns online, board ports "
            "for the host, QEMU's mps2-an386 (Cortex-M4F) and the Arduino Nano 33 BLE Sense."
        ),
    )
    sub = fw.add_subparsers(dest="firmware_command", required=True, metavar="SUBCOMMAND")

    gen = sub.add_parser(
        "generate",
        help="generate C99 for an int8 .tflite model",
        description=(
            "Write tinyfleet_model.h / tinyfleet_model.c: weights and quantisation parameters as const "
            "arrays, a static tensor arena sized by a liveness plan, and calls to the int8 "
            "kernels the model uses. An unsupported operator is an error naming it."
        ),
    )
    gen.add_argument("model", type=Path, help="int8 .tflite model (int8 input and output)")
    gen.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    gen.set_defaults(func=_generate)

    build = sub.add_parser(
        "build",
        help="build the firmware with CMake for a target",
        description=(
            "Configure and build firmware/ with CMake. host: native binary (tests); "
            "qemu-mps2-an385 (Cortex-M3), -an386 (M4F), -an500 (M7), qemu-mps2-an505 (M33), "
            "qemu-mps3-an547 (M55): ELFs for QEMU with semihosting; nano33ble: "
            "Cortex-M4F image for the Arduino Nano 33 BLE Sense plus an Arduino library "
            "folder (flash it yourself, see docs/firmware.md)."
        ),
    )
    build.add_argument("--target", required=True, choices=TARGET_NAMES)
    build.add_argument(
        "--kernels",
        choices=("reference", "dsp"),
        help="int8 kernel set (default: the target's: dsp where the core has the DSP extension)",
    )
    build.add_argument(
        "--model",
        type=Path,
        help="int8 .tflite to generate and link in, or a model_card.json (its .tflite and head)",
    )
    build.add_argument(
        "--head-sizes",
        help="head layer sizes (e.g. 32,16,5): also build the device loop tinyfleet_device "
        "(default: the head of the model card, if any)",
    )
    build.add_argument("--activation", default="relu", choices=("relu", "tanh"))
    build.add_argument("--loss", default="softmax_ce", choices=("softmax_ce", "mse"))
    build.add_argument(
        "--build-dir", type=Path, help="build directory (default: build/firmware-<target>)"
    )
    build.add_argument(
        "--sanitize", action="store_true", help="host only: AddressSanitizer + UBSan"
    )
    build.add_argument(
        "--update-top-p",
        type=float,
        help="TinyMetaFed device: keep theta and upload its own Top-P%% int8 update (top-p "
        "up to this value), reply buffers sized for it (docs/algorithms.md)",
    )
    build.set_defaults(func=_build)

    run = sub.add_parser(
        "run-qemu",
        help="run the firmware on the emulated Cortex-M4F and check it against TFLM",
        description=(
            "Build the firmware for qemu-mps2-an386 with --model, run random inputs through "
            "it inside qemu-system-arm and through the TFLM Python interpreter, and print "
            "how many outputs are bit-exact plus the instructions per inference (-icount)."
        ),
    )
    run.add_argument("--model", type=Path, help="int8 .tflite model (self-check mode)")
    run.add_argument(
        "--device",
        type=Path,
        metavar="ELF",
        help="run this tinyfleet_device.elf instead, its UART on --uart-port for `tinyfleet bridge "
        "serial tcp:127.0.0.1:PORT`, until Ctrl-C",
    )
    run.add_argument("--uart-port", type=int, default=4444, help="TCP port of the UART")
    run.add_argument("--inputs", type=int, default=100, help="random inputs (default 100)")
    run.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    run.add_argument(
        "--target",
        default="qemu-mps2-an386",
        choices=QEMU_TARGET_NAMES,
        help="QEMU target for --model (default qemu-mps2-an386, the Cortex-M4F)",
    )
    run.add_argument("--kernels", choices=("reference", "dsp"), help="default: the target's")
    run.add_argument("--build-dir", type=Path, help="default: build/firmware-<target>")
    run.set_defaults(func=_run_qemu)

    fl = sub.add_parser(
        "flash",
        help="write the device loop image to a board (bossac or pyOCD)",
        description=(
            "Check the board image (vector table at the application offset 0x10000, stack "
            "and reset vector inside RAM and flash, size within the board), then write it "
            "through the Arduino bootloader with bossac (--port; double-tap reset first) or "
            "through an SWD probe with pyOCD (--probe). Build it first with `tinyfleet "
            "firmware build --target nano33ble --model model_card.json`."
        ),
    )
    fl.add_argument("--target", required=True, choices=("nano33ble",))
    how = fl.add_mutually_exclusive_group(required=True)
    how.add_argument("--port", help="the bootloader's serial port, e.g. /dev/ttyACM0")
    how.add_argument(
        "--probe",
        nargs="?",
        const="",
        metavar="UID",
        help="write through an SWD probe with pyOCD (optionally the probe's unique id)",
    )
    fl.add_argument(
        "--image",
        type=Path,
        help="ELF to write (default: build/firmware-<target>/tinyfleet_device.elf)",
    )
    fl.add_argument("--build-dir", type=Path, help="default: build/firmware-<target>")
    fl.add_argument(
        "--dry-run", action="store_true", help="check the image and print the command only"
    )
    fl.set_defaults(func=_flash)

    rep = sub.add_parser(
        "report",
        help="flash, RAM, arena and instruction counts per model",
        description=(
            "Per model: flash_bytes and ram_bytes from the linker map of the Cortex-M4F "
            "build, arena_bytes (generated plan), tflm_arena_bytes (TFLM Python "
            "interpreter), head training RAM, insns_per_inference and insns_per_sgd_step "
            "counted in QEMU with -icount, and whether it fits each board (Nano 33 BLE "
            "Sense: 256 KB RAM, 1 MB flash). The head comes from model_card.json beside the "
            "model unless --head-sizes is given."
        ),
    )
    rep.add_argument(
        "models", type=Path, nargs="+", help="int8 .tflite models or model_card.json files"
    )
    rep.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rep.add_argument(
        "--target",
        action="append",
        choices=(*QEMU_TARGET_NAMES, "nano33ble"),
        help="target to measure (repeatable; default qemu-mps2-an386, the Nano's core); "
        "nano33ble: instructions on its QEMU twin, flash and RAM of the board's "
        "device-loop image",
    )
    rep.add_argument(
        "--kernels",
        choices=("reference", "dsp", "both"),
        default="both",
        help="kernel set(s) to measure (default both; a core without DSP gets reference only)",
    )
    rep.add_argument("--head-sizes", help="head layer sizes, e.g. 32,16,5")
    rep.add_argument("--activation", default="relu", choices=("relu", "tanh"))
    rep.add_argument("--loss", default="softmax_ce", choices=("softmax_ce", "mse"))
    rep.set_defaults(func=_report)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")


def _generate(args: argparse.Namespace) -> int:
    from tinyfleet.firmware.codegen import generate_from_file

    _require_file(args.model)
    gen = generate_from_file(args.model, args.output)
    print(
        f"wrote {args.output / 'tinyfleet_model.h'} and {args.output / 'tinyfleet_model.c'}: "
        f"{len(gen.operators)} operator kinds ({', '.join(gen.operators)}), "
        f"arena {gen.arena_bytes} B, weights {gen.weight_bytes} B"
    )
    return 0


def _build_dir(args: argparse.Namespace, target: str) -> Path:
    return Path(args.build_dir) if args.build_dir else DEFAULT_BUILD_ROOT / f"firmware-{target}"


def _build(args: argparse.Namespace) -> int:
    from tinyfleet.firmware.codegen import generate_model_file
    from tinyfleet.firmware.device_config import write_device_config
    from tinyfleet.firmware.report import _resolve, flash_and_ram
    from tinyfleet.firmware.targets import get_target
    from tinyfleet.firmware.toolchain import FIRMWARE_DIR, cmake_build
    from tinyfleet.firmware.validate import check_head_input

    if args.sanitize and args.target != "host":
        raise UsageError("--sanitize works with --target host only")
    build_dir = _build_dir(args, args.target)
    model_dir = None
    tflite, head = None, None
    if args.model is not None:
        _require_file(args.model)
        tflite, head = _resolve(args.model)
    if args.head_sizes:
        head = _head_spec(args)
    if tflite is not None:
        model_dir = build_dir / "model"
        generated = generate_model_file(tflite, ram_bytes=get_target(args.target).ram_bytes)
        if head is not None:  # checked before anything is written
            check_head_input(generated.output_size, head.input_dim)
        generated.write(model_dir)
    config_dir = None
    if head is not None:
        config_dir = build_dir / "device"
        write_device_config(head, config_dir, update_top_p=args.update_top_p)
    frontend_dir = None
    if config_dir is not None and tflite is not None and _takes_audio(args.model):
        from tinyfleet.firmware.frontend import write_cmake

        # The card's input is 1 s of raw audio: the device loop computes the MFCCs itself.
        frontend_dir = build_dir / "frontend"
        write_cmake(frontend_dir)
    result = cmake_build(
        args.target,
        build_dir,
        model_dir,
        sanitize=args.sanitize,
        device_config_dir=config_dir,
        kernels=args.kernels,
        frontend_dir=frontend_dir,
    )
    print(f"built {args.target} in {result.build_dir}")
    if frontend_dir is not None and result.device:
        print("  audio front end: CMSIS-DSP MFCC in the device loop ('A' frames: 1 s of PCM)")
    if result.job_runner:
        print(f"  job runner (tests, benchmarks): {result.job_runner}")
    if result.device:
        print(f"  device loop (serial bridge): {result.device}")
    if result.map_file:
        flash, ram = flash_and_ram(result.map_file.read_text(), get_target(args.target).ram_origin)
        print(f"  flash {flash} B, RAM {ram} B (linker map {result.map_file})")
    if result.device is not None and not get_target(args.target).semihosting:
        from tinyfleet.firmware.flash import check_image, write_bin

        info = check_image(result.device, get_target(args.target))
        image = write_bin(result.device)
        print(
            f"  board image: {image} ({info.flash_bytes} B at {info.load_origin:#x}, RAM "
            f"{info.ram_bytes} B; write it with `tinyfleet firmware flash --target "
            f"{args.target} --port PORT`)"
        )
    if args.target == "nano33ble":
        lib = result.build_dir / "arduino" / "tinyfleet"
        if lib.exists():
            shutil.rmtree(lib)
        shutil.copytree(FIRMWARE_DIR / "ports" / "arduino" / "tinyfleet", lib)
        src = lib / "src"
        src.mkdir(exist_ok=True)
        sources = [*(FIRMWARE_DIR / "include").glob("*.h"), *(FIRMWARE_DIR / "src").glob("*.[ch]")]
        for path in sources:
            shutil.copy(path, src / path.name)
        if model_dir is not None:
            for path in model_dir.iterdir():
                shutil.copy(path, src / path.name)
        print(f"  Arduino library: {lib} (copy into your Arduino libraries folder)")
    return 0


def _takes_audio(model: Path) -> bool:
    """Whether ``model`` (a model card, or a .tflite with its card beside it) takes raw
    audio through the keyword front end."""
    from tinyfleet.device.frontend import card_takes_audio

    card = model if model.suffix == ".json" else model.parent / "model_card.json"
    try:
        return card_takes_audio(json.loads(card.read_text()))
    except (OSError, json.JSONDecodeError):
        return False


def _flash(args: argparse.Namespace) -> int:
    import subprocess

    from tinyfleet.firmware.flash import (
        BOSSAC_INSTALL,
        PYOCD_INSTALL,
        bossac_argv,
        check_image,
        pyocd_argv,
        require_program,
        write_bin,
    )
    from tinyfleet.firmware.targets import get_target

    row = get_target(args.target)
    elf = args.image or _build_dir(args, args.target) / "tinyfleet_device.elf"
    if not elf.is_file():
        raise InputFileError(
            f"{elf}: no such file (build it with `tinyfleet firmware build --target "
            f"{args.target} --model MODEL_CARD`)"
        )
    info = check_image(elf, row)
    if args.probe is not None:
        argv = pyocd_argv(elf, args.probe or None)
        install = PYOCD_INSTALL
    else:
        argv = bossac_argv(args.port, elf.with_suffix(".bin"))
        install = BOSSAC_INSTALL
    print(
        f"{elf}: loads at {info.load_origin:#x}, SP {info.initial_sp:#x}, reset "
        f"{info.reset_vector:#x}, flash {info.flash_bytes} B, RAM {info.ram_bytes} B"
    )
    print(" ".join(argv))
    if args.dry_run:
        return 0
    require_program(argv, install)
    if args.probe is None:
        write_bin(elf)
    return subprocess.run(argv, check=False).returncode


def _run_qemu(args: argparse.Namespace) -> int:
    import numpy as np

    from tinyfleet.device.head import HeadSpec
    from tinyfleet.firmware.codegen import generate_from_file
    from tinyfleet.firmware.golden import tflm_outputs
    from tinyfleet.firmware.jobs import bench_job, inference_job, run_job
    from tinyfleet.firmware.targets import get_target
    from tinyfleet.firmware.toolchain import cmake_build

    if args.device is not None:
        return _run_qemu_device(args.device, args.uart_port)
    if args.model is None:
        raise UsageError("give --model MODEL.tflite (self-check) or --device tinyfleet_device.elf")
    _require_file(args.model)
    if args.inputs < 1:
        raise UsageError("--inputs must be >= 1")
    row = get_target(args.target)
    assert row.qemu_machine is not None
    build_dir = _build_dir(args, args.target)
    gen = generate_from_file(args.model, build_dir / "model", ram_bytes=row.ram_bytes)
    result = cmake_build(args.target, build_dir, build_dir / "model", kernels=args.kernels)
    assert result.job_runner is not None
    rng = np.random.default_rng(args.seed)
    inputs = rng.integers(-128, 128, size=(args.inputs, gen.input_size), dtype=np.int8)
    raw, _ = run_job(result.job_runner, inference_job(inputs), qemu=True, machine=row.qemu_machine)
    outputs = np.frombuffer(raw, dtype=np.int8).reshape(args.inputs, gen.output_size)
    golden = tflm_outputs(args.model.read_bytes(), inputs)
    exact = int(np.sum(np.all(outputs == golden, axis=1)))
    spec = HeadSpec((gen.output_size, 5), "relu", "softmax_ce")
    bench, _ = run_job(
        result.job_runner,
        bench_job(spec, np.zeros(spec.num_params, np.float32), 0.01,
                  np.zeros(gen.output_size, np.float32), 0, 2),
        qemu=True,
        icount=True,
        machine=row.qemu_machine,
    )  # fmt: skip
    insns = np.frombuffer(bench, dtype="<u4")
    print(
        f"{exact}/{args.inputs} inferences bit-exact with TFLM on qemu-system-arm "
        f"{row.qemu_machine} ({row.core}, {args.kernels or row.kernels} kernels)"
    )
    print(f"instructions per inference: {int(insns[0])}")
    return 0 if exact == args.inputs else 1


def _head_spec(args: argparse.Namespace) -> Any:
    from tinyfleet.device.head import HeadSpec

    try:
        sizes = tuple(int(v) for v in args.head_sizes.split(","))
    except ValueError:
        raise UsageError(
            f"--head-sizes must be comma-separated ints, got {args.head_sizes!r}"
        ) from None
    return HeadSpec(sizes, args.activation, args.loss)


def _run_qemu_device(elf: Path, uart_port: int) -> int:
    import subprocess

    from tinyfleet.firmware.toolchain import QEMU, require_tools

    _require_file(elf)
    require_tools("qemu-mps2-an386")
    cmd = [
        QEMU, "-M", "mps2-an386", "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native",
        "-serial", f"tcp:127.0.0.1:{uart_port},server=on,wait=on",
        "-kernel", str(elf),
    ]  # fmt: skip
    print(
        f"QEMU mps2-an386 running {elf}; UART0 waits on tcp:127.0.0.1:{uart_port} "
        f"(connect `tinyfleet bridge serial tcp:127.0.0.1:{uart_port} --device-id ...`)",
        flush=True,
    )
    try:
        return subprocess.run(cmd, check=False).returncode
    except KeyboardInterrupt:
        return 130


def _report(args: argparse.Namespace) -> int:
    from tinyfleet.firmware.report import format_table, report_model
    from tinyfleet.firmware.targets import DEFAULT_QEMU_TARGET, TARGETS

    head = _head_spec(args) if args.head_sizes else None
    for model in args.models:
        _require_file(model)
    rows = []
    for target in args.target or [DEFAULT_QEMU_TARGET]:
        sets = ("reference", "dsp") if args.kernels == "both" else (args.kernels,)
        if TARGETS[target].kernels == "reference":
            sets = ("reference",)  # no DSP extension: the DSP kernels would not be faster
        for kernels in sets:
            rows += [report_model(m, head, target=target, kernels=kernels) for m in args.models]
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        print(format_table(rows))
    return 0 if all(all(r.fits.values()) for r in rows) else 1
