#!/usr/bin/env bash
# Checks the import-linter contracts in pyproject.toml (the layers in DESIGN.md).
# The top-level folders are installed as one namespace (tinyfleet.<folder>, via setuptools
# package-dir), which import-linter's graph builder cannot follow in an editable install;
# so it reads a temporary tree of symlinks laid out as the installed package.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/tinyfleet"
ln -s "$root"/tinyfleet/*.py "$tree/tinyfleet/"
for folder in device server firmware ontology simulations; do
  ln -s "$root/$folder" "$tree/tinyfleet/$folder"
done
cd "$tree"
PYTHONPATH="$tree" "$root/.venv/bin/lint-imports" --config "$root/pyproject.toml" --no-cache "$@"
