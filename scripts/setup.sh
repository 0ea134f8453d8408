#!/usr/bin/env bash
# One-time (idempotent) set-up: Debian packages when root, .venv, torch CPU, the project.
# Re-runs are a no-op unless pyproject.toml, setup.py or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${OPENDANCE_EXTRAS:-dev,text}
# PortAudio + libsndfile for audio I/O; PulseAudio for the virtual-microphone tests;
# Chromium for the browser-viewer test.
APT_PACKAGES="libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins chromium"

hash=$(cat pyproject.toml setup.py scripts/setup.sh | sha1sum | cut -c1-12)
stamp=".venv/.setup-$hash-$EXTRAS"
if [ -f "$stamp" ] && [ -x .venv/bin/python ]; then
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=""
    for p in $APT_PACKAGES; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "setup: installing Debian packages:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
else
    echo "setup: not root; skipping Debian packages ($APT_PACKAGES). Audio tests may skip."
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
# torch first: the CPU build from local disk, or anything that depends on torch pulls CUDA.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    echo "setup: installing torch==2.13.0 (CPU)"
    pip install torch==2.13.0
fi
echo "setup: installing opendance[$EXTRAS] (editable)"
pip install -e ".[$EXTRAS]"
.venv/bin/python -c "import opendance, torch" || { echo "setup: install failed" >&2; exit 1; }
rm -f .venv/.setup-*
touch "$stamp"
echo "setup: done"
