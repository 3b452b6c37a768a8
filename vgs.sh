#!/usr/bin/env bash
# vgs.sh: set up what is missing, then run the pipeline or the tests.
#   ./vgs.sh run [snakemake args...]  the main job: snakemake --cores all [args...] (rule all unless
#                                     you name targets; no --cores added when you give -c/-j or a profile)
#   ./vgs.sh test [pytest args...]    the tests: python -m pytest -q -m "not slow" [args...]
#   ./vgs.sh setup [--force]          only the set-up
# Set-up (envs/setup.sh: Debian packages, .venv, pinned packages) runs when the sha256 of its files,
# recorded in .venv/.vgs-setup by the last successful set-up, differs from theirs now.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STAMP=$ROOT/.venv/.vgs-setup
SETUP_FILES=(envs/requirements.txt envs/apt.txt envs/setup.sh envs/vgs.post-deploy.sh)

say() { echo "vgs: $*" >&2; }

usage() {
  sed -n '2,6s/^# \{0,1\}//p' "$ROOT/vgs.sh" >&2
  exit "${1:-2}"
}

hashes() { (cd "$ROOT" && sha256sum "${SETUP_FILES[@]}"); }

# The set-up files changed since the last set-up, or why there is none.
changed() {
  if [ ! -x "$ROOT/.venv/bin/python" ] || [ ! -f "$STAMP" ]; then
    echo "no set-up yet"
  else
    { diff <(hashes) "$STAMP" || true; } | sed -n 's/^< [0-9a-f]*  //p' | xargs
  fi
}

ensure_setup() {
  # One set-up at a time: two commands started together on a fresh clone must not both run pip.
  if command -v flock >/dev/null; then
    exec 9<"$ROOT/vgs.sh"
    flock -n 9 || { say "waiting for the set-up that another vgs.sh is running"; flock 9; }
  fi
  local why; why=$(changed)
  if [ -z "$why" ] && [ "${1:-}" != --force ]; then
    say "set-up is current (${SETUP_FILES[*]} unchanged since the last one)"
  else
    say "set-up needed: ${why:-forced}"
    local t0=$SECONDS
    bash "$ROOT/envs/setup.sh"
    hashes >"$STAMP"
    say "set-up done in $((SECONDS - t0)) s"
  fi
  if command -v flock >/dev/null; then exec 9<&-; fi
}

cmd_run() {
  local pre=() a cores=yes snakefile=yes
  for a in "$@"; do
    case $a in
      -c* | --cores | --cores=* | -j* | --jobs | --jobs=* | --profile | --profile=* | \
        --workflow-profile | --workflow-profile=* | -e | --executor | --executor=*) cores= ;;
      -s | --snakefile | --snakefile=*) snakefile= ;;
    esac
  done
  [ -n "${SNAKEMAKE_PROFILE:-}" ] && cores=
  # From another directory, that directory is the working directory (results/ land there).
  [ -n "$snakefile" ] && pre+=(--snakefile "$ROOT/Snakefile")
  [ -n "$cores" ] && pre+=(--cores all)
  ensure_setup
  say "running: snakemake ${pre[*]-} $*"
  exec "$ROOT/.venv/bin/snakemake" ${pre[@]+"${pre[@]}"} "$@"
}

cmd_test() {
  ensure_setup
  cd "$ROOT"
  say "running: python -m pytest -q -m \"not slow\" $*"
  exec .venv/bin/python -m pytest -q -m "not slow" "$@"
}

case ${1:-} in
  run) shift; cmd_run "$@" ;;
  test) shift; cmd_test "$@" ;;
  setup)
    shift
    case ${1:-} in "" | --force) ensure_setup "${1:-}" ;; *) usage ;; esac
    ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
