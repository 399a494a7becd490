"""The ``tinyfleet`` command: wires the subpackages' subcommands together.

Each subpackage owns a ``cli`` module with ``register(subparsers)``, which adds its
commands and sets ``func`` on each; heavy imports (TensorFlow, Flower, rdflib) happen
inside the handlers so that ``tinyfleet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from tinyfleet import __version__
from tinyfleet.errors import TinyfleetError

COMMAND_MODULES = (
    "tinyfleet.simulations.cli",
    "tinyfleet.simulations.export_cli",
    "tinyfleet.simulations.device_cli",
    "tinyfleet.device.cli",
    "tinyfleet.server.cli",
    "tinyfleet.ontology.cli",
    "tinyfleet.firmware.cli",
    "tinyfleet.simulations.bridge_cli",
    "tinyfleet.simulations.drift_cli",
    "tinyfleet.simulations.deploy_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyfleet",
        description=(
            "Federated meta-learning (TinyReptile) and semantic management for fleets of "
            "microcontrollers. Simulate fleets, export int8 models, run MQTT devices, "
            "query the knowledge graph, build firmware."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tinyfleet {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except TinyfleetError as error:
        print(f"tinyfleet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinyfleet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tinyfleet inspect m.tflite | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
