"""TinyMetaFed vs TinyReptile: static RAM of the firmware device loop (issue 11).

Run:  .venv/bin/python benchmarks/bench_tinymetafed_ram.py [--use-case sine] [--top-p 0.05]

Builds the serial-bridge device loop for qemu-mps2-an386 (Cortex-M4F) twice for the use
case's head: the TinyReptile build (replies phi, dense) and the TinyMetaFed build
(``firmware build --update-top-p``: keeps theta, encodes its own Top-P% int8 update, reply
buffers sized for it). Reads the device loop's static buffers (``g_*`` symbols, from
``arm-none-eabi-nm``) and the image's data + bss (``arm-none-eabi-size``), and prints the
TinyMetaFed / TinyReptile ratios. No backbone is linked (its arena and input buffers are
the same in both builds). Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from tinyfleet.firmware.device_config import write_device_config
from tinyfleet.firmware.toolchain import cmake_build
from tinyfleet.simulations.usecase import get_use_case


def _static_ram(elf: Path) -> tuple[int, dict[str, int]]:
    """``(data + bss of the image, {device-loop buffer: bytes})``."""
    size = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    nm = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True)
    buffers = {}
    for line in nm.stdout.splitlines():
        parts = line.split()
        # "ADDRESS SIZE TYPE NAME": static data/bss of the device loop are its g_* buffers.
        if len(parts) == 4 and parts[2] in "bBdD" and parts[3].startswith("g_"):
            buffers[parts[3]] = int(parts[1], 16)
    return data + bss, buffers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--use-case", default="sine")
    parser.add_argument("--top-p", type=float, default=0.05)
    args = parser.parse_args()
    spec = get_use_case(args.use_case).head_spec
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, top_p in (("tinyreptile", None), ("tinymetafed", args.top_p)):
            config = Path(tmp) / name / "config"
            write_device_config(spec, config, update_top_p=top_p)
            build = cmake_build(
                "qemu-mps2-an386", Path(tmp) / name / "build", None, device_config_dir=config
            )
            assert build.device is not None
            rows[name] = _static_ram(build.device)
    for name, (image, buffers) in rows.items():
        top = ", ".join(f"{k} {v}" for k, v in sorted(buffers.items(), key=lambda kv: -kv[1])[:6])
        print(f"{name:12s} image data+bss {image:7d} B  device-loop buffers "
              f"{sum(buffers.values()):7d} B  ({top})")  # fmt: skip
    (tmf_image, tmf), (tr_image, tr) = rows["tinymetafed"], rows["tinyreptile"]
    print(
        f"{args.use_case} head {spec.layer_sizes}, top-p {args.top_p}: TinyMetaFed / "
        f"TinyReptile device-loop buffers {sum(tmf.values()) / sum(tr.values()):.3f}x, "
        f"image data+bss {tmf_image / tr_image:.3f}x"
    )


if __name__ == "__main__":
    main()
