#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the linters and the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check .
echo "== import layers"; scripts/lint_imports.sh
echo "== mypy"; .venv/bin/mypy tinyfleet device server simulations ontology firmware
echo "== pytest"; .venv/bin/python -m pytest -q "$@"
