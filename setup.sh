#!/usr/bin/env bash
# Set up navintent from nothing on a Debian/Ubuntu machine: system libraries for offscreen MuJoCo
# rendering, a virtual environment in .venv, PyTorch's CPU wheel FIRST (so no CUDA build is pulled),
# then the package with its test tools. Idempotent: re-running it is fast.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
for pkg in libegl1 libopengl0 libgl1-mesa-dri; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing system packages ${need_apt[*]} (needed for MuJoCo's offscreen EGL rendering)." >&2
    echo "          install them with: sudo apt-get install -y --no-install-recommends ${need_apt[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# A GPU user may pre-install their own torch (>= 2.1) into .venv; we only add the CPU wheel when none is there.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "setup.sh: ready (.venv/bin/navintent)"
