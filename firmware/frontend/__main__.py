"""``python -m tinyfleet.firmware.frontend [N]``: build the C front end for QEMU, run N
clips of the keyword corpus (default 8) and print instructions per 1 s window, the
real-time factor at 64 MHz and agreement with the Python front end."""

from __future__ import annotations

import json
import sys

import numpy as np

from tinyfleet.firmware.frontend.build import frontend_report


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 8
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    clips = np.stack(
        [
            np.round(
                rng.uniform(500, 12000) * np.sin(2 * np.pi * rng.uniform(100, 3000) * t)
                + rng.uniform(10, 3000) * rng.standard_normal(16_000)
            ).astype(np.int16)
            for _ in range(count)
        ]
    )
    print(json.dumps(frontend_report(clips), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
