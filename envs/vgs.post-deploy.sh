#!/usr/bin/env bash
# What pip cannot do from a requirements file, for the Python that `python` names: the .venv
# (envs/setup.sh puts it first on PATH) or the conda env of envs/vgs.yaml (Snakemake runs this file,
# by its name, in the activated env after creating it).  VGS_ROOT is this checkout (set by
# envs/setup.sh, and by workflow/rules/common.smk for Snakemake).
set -euo pipefail
: "${VGS_ROOT:?VGS_ROOT must name the vgs checkout}"

# torchaudio wheels pin a CUDA torch build.  We need only its pure-Python parts
# (compliance.kaldi.fbank, functional.resample), so install it without dependencies
# and drop its CUDA-linked extension, which cannot load beside our torch.
python -m pip install -q --no-deps torchaudio==2.11.0
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -f "$site"/torchaudio/lib/*.so

# The vgs package of this checkout, editable: a code change needs no reinstall.
python -m pip install -q --no-deps -e "$VGS_ROOT"
