"""Subcommands of ``tinyfleet`` owned by tinyfleet.simulations."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add this package's commands to the tinyfleet parser."""
    del subparsers  # no commands yet


def _unused(args: argparse.Namespace) -> int:  # pragma: no cover
    return 0
