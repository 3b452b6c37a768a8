#!/usr/bin/env bash
# Set-up on Debian 12: the missing Debian packages of envs/apt.txt, then .venv with the pins of
# envs/requirements.txt, torchaudio and this checkout (envs/vgs.post-deploy.sh, shared with the conda
# env).  ./vgs.sh runs this when the set-up files changed; VGS_SKIP_APT=1 skips the Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
say() { echo "vgs setup: $*" >&2; }

if [ -n "${VGS_SKIP_APT:-}" ]; then
  say "VGS_SKIP_APT is set: Debian packages not checked"
elif ! command -v dpkg-query >/dev/null; then
  say "no dpkg-query: not Debian.  Install the equivalents of envs/apt.txt (conda-forge names in"
  say "envs/vgs.yaml), then run again with VGS_SKIP_APT=1."
  exit 1
else
  wanted=$(sed 's/#.*//' envs/apt.txt | xargs)
  missing=$(for p in $wanted; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || echo "$p"
  done | xargs)
  if [ -z "$missing" ]; then
    say "Debian packages present: $wanted"
  elif [ "$(id -u)" != 0 ]; then
    cat >&2 <<MSG
vgs setup: missing Debian packages: $missing
vgs setup: installing them needs root, and you are $(id -un).  Run (or ask an administrator to run):
    sudo apt-get update && sudo apt-get install -y $missing
vgs setup: then run your command again.  To go on without them, set VGS_SKIP_APT=1.
MSG
    exit 1
  else
    say "installing Debian packages: $missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi

if [ -x .venv/bin/python ]; then
  say ".venv present ($(.venv/bin/python -V))"
else
  say "creating .venv with $("$PY" -V)"
  "$PY" -m venv .venv
fi
say "pip install -r envs/requirements.txt"
.venv/bin/pip install -q --upgrade pip==25.3
.venv/bin/pip install -q -r envs/requirements.txt
say "torchaudio and this checkout (envs/vgs.post-deploy.sh)"
PATH="$PWD/.venv/bin:$PATH" VGS_ROOT="$PWD" bash envs/vgs.post-deploy.sh
.venv/bin/python -c "import torch, torchaudio, vgs; print('vgs setup: ready: torch', torch.__version__, 'torchaudio', torchaudio.__version__)" >&2
