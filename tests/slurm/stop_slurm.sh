#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_slurm.sh started in STATE_DIR (by their pid files only).
#   tests/slurm/stop_slurm.sh STATE_DIR
set -uo pipefail
STATE=${1:?usage: stop_slurm.sh STATE_DIR}

stop() {  # pid file, name
    [[ -s $1 ]] || return 0
    local pid
    pid=$(cat "$1")
    # only signal the pid if it is still the daemon we started (pids can be reused)
    if kill -0 "$pid" 2>/dev/null && grep -q "$2" "/proc/$pid/comm" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped $2 ($pid)"
    fi
    rm -f "$1"
}

# cancel anything still queued so slurmd has no steps left, then the daemons, munge last
if [[ -s $STATE/slurm.conf ]] && [[ -s $STATE/slurmctld.pid ]]; then
    SLURM_CONF=$STATE/slurm.conf timeout 10 scancel --full --quiet --user "$(id -un)" 2>/dev/null || true
fi
stop "$STATE/slurmd.pid" slurmd
stop "$STATE/slurmctld.pid" slurmctld
stop "$STATE/munge/munged.pid" munged
# the config symlink start_slurm.sh made, if it still points into STATE
if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$(cd "$STATE" && pwd)/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi
exit 0
