#!/usr/bin/env bash
# Sets up tinyfleet on a fresh Debian/Ubuntu machine: system tools (as root, via apt) and a
# virtual environment in .venv with tinyfleet installed in editable mode.
#   TINYFLEET_SKIP_APT=1   skip the apt step (e.g. no root; the MQTT/firmware tests then skip)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mosquitto cmake gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm chromium espeak-ng)
if [[ "${TINYFLEET_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
    echo "setup: installing ${missing[*]} (apt, --no-install-recommends)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PYTHON=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
# pip's output goes to a log; it is shown only if the install fails.
log=.venv/pip-install.log
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e ".[dev]"; } >"$log" 2>&1; then
  grep -v "is ignored" "$log" | tail -40 >&2
  echo "setup: pip install failed (full log: $log)" >&2
  exit 1
fi
.venv/bin/python -c "import tinyfleet, tinyfleet.device.head" || { echo "setup: tinyfleet did not install" >&2; exit 1; }
echo "setup: ready (.venv/bin/tinyfleet)"
