"""Lets the ontology tests import their brute-force reference (``matchmaking_reference``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
