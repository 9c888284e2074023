#!/usr/bin/env bash
# Set up everything dtmsi and its test suite need on a fresh Debian machine:
# the Debian packages listed in scripts/apt-packages.txt (dtc, gcc, clang,
# QEMU for the real-kernel tests, ...) and a virtualenv in .venv with dtmsi
# installed in editable mode plus its test dependencies.
# Idempotent: a second run installs nothing new and takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

want=()
while read -r pkg; do
    pkg="${pkg%%#*}"; pkg="${pkg//[[:space:]]/}"
    [ -n "$pkg" ] || continue
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        want+=("$pkg")
    fi
done < scripts/apt-packages.txt

if [ "${#want[@]}" -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${want[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.dtmsi-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing dtmsi and test dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi
