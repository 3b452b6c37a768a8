#!/usr/bin/env bash
# One-command set-up on Debian 12 / Python 3.11: Debian packages, then .venv with pinned packages.
#   bash envs/setup.sh            (as root, or with sudo available for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)

if [ -z "${VGS_SKIP_APT:-}" ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(grep -v '^#' envs/apt.txt) >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip==25.3
.venv/bin/pip install -q -r envs/requirements.txt
# torchaudio wheels pin a CUDA torch build.  We need only its pure-Python parts
# (compliance.kaldi.fbank, functional.resample), so install it without dependencies
# and drop its CUDA-linked extension, which cannot load beside the CPU torch.
.venv/bin/pip install -q --no-deps torchaudio==2.11.0
rm -f .venv/lib/python3*/site-packages/torchaudio/lib/*.so
.venv/bin/pip install -q --no-deps -e .
.venv/bin/python -c "import torch, torchaudio, vgs; print('vgs ready: torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
