#!/usr/bin/env bash
# Start a throw-away one-node SLURM cluster on this machine, for tests/test_slurm.py.
#
#   tests/slurm/start_slurm.sh STATE_DIR
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge if missing (needs root + apt-get),
# then runs munged, slurmctld and slurmd with everything (config, key, sockets, state, logs,
# pid files) under STATE_DIR and on non-default ports, so that a real SLURM/munge installation
# on the same machine is left alone.  The one thing outside STATE_DIR is the symlink
# /etc/slurm/slurm.conf -> STATE_DIR/slurm.conf: snakemake-executor-plugin-slurm-jobstep strips
# SLURM_CONF (every SLURM_* variable but a few) from the `srun` it runs inside each job, so srun
# must find the config at the default path.  An /etc/slurm/slurm.conf that this script did not
# write is never replaced (exit 3).  Stop the cluster with tests/slurm/stop_slurm.sh.
#
# No cgroups (containers rarely allow them): processes are tracked through /proc
# (proctrack/linuxproc) and not bound (task/none).  No slurmdbd: sacct cannot work, so the
# test's profile queries job states with squeue; MinJobAge keeps finished jobs visible to
# squeue for 10 min, and jobcomp/filetxt writes one line per finished job as a durable record.
#
# Exit codes: 0 ready; 3 SLURM cannot run here (not root / no apt-get / apt failed / a foreign
# /etc/slurm/slurm.conf);
# anything else: the cluster failed to start (see the logs in STATE_DIR).
set -euo pipefail

STATE=$(mkdir -p "${1:?usage: start_slurm.sh STATE_DIR}" && cd "$1" && pwd)
CTLD_PORT=${VGS_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${VGS_SLURMD_PORT:-16818}
t0=$(date +%s%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}'; }

if [[ $(id -u) != 0 ]]; then echo "not root: the test cluster's daemons run as root" >&2; exit 3; fi

# --- install (only what is missing) ---
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if ((${#need[@]})); then
    if ! command -v apt-get >/dev/null; then echo "cannot install ${need[*]}: no apt-get" >&2; exit 3; fi
    echo "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >"$STATE/apt.log" 2>&1; then
        tail -5 "$STATE/apt.log" >&2
        echo "cannot install ${need[*]}: apt-get failed (log: $STATE/apt.log)" >&2
        exit 3
    fi
fi
echo "install: $(elapsed) s ($(slurmd -V))"

# --- configuration ---
mkdir -p "$STATE/ctld" "$STATE/spool" "$STATE/munge"
chmod 700 "$STATE/munge"
if [[ ! -s $STATE/munge/munge.key ]]; then
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$STATE/munge/munge.key"
fi
HOST=$(hostname -s)
read -r CPUS MEM < <(slurmd -C | awk '/NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "=");
    if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2]}} END {print c, m}')
cat >"$STATE/slurm.conf" <<EOF
# One-node test cluster written by tests/slurm/start_slurm.sh
ClusterName=vgstest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# container friendly: no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
# no slurmdbd; one line per finished job in jobcomp.txt; squeue shows jobs 10 min after the end
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.txt
MinJobAge=600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# one pretend GPU (a GRES without a device file), so that a rule's gpu resource -> --gpus=1
# can be scheduled and checked without a GPU
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# a GPU GRES needs a device file; /dev/null stands in for /dev/nvidia0
echo "NodeName=$HOST Name=gpu File=/dev/null" >"$STATE/gres.conf"
export SLURM_CONF=$STATE/slurm.conf
ETC=/etc/slurm/slurm.conf
if [[ -e $ETC || -L $ETC ]] && ! grep -q "^# One-node test cluster written by tests/slurm/start_slurm.sh" "$ETC" 2>/dev/null; then
    echo "$ETC exists and was not written by this script: not replacing a real SLURM config" >&2
    exit 3
fi
mkdir -p /etc/slurm
ln -sfn "$SLURM_CONF" "$ETC"

# --- daemons ---
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$STATE/munge/munged.pid" || munged --force --socket="$STATE/munge/munge.socket" \
    --key-file="$STATE/munge/munge.key" --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
running "$STATE/slurmctld.pid" || slurmctld -f "$SLURM_CONF"
running "$STATE/slurmd.pid" || slurmd -f "$SLURM_CONF" -N "$HOST"

for _ in $(seq 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null || true)
    [[ $state == idle* || $state == mixed* || $state == allocated* || $state == inval* ]] && break
    sleep 0.5
done
if [[ $state != idle* && $state != mixed* && $state != allocated* ]]; then
    echo "node $HOST did not become idle (state '${state:-none}')" >&2
    tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
    exit 1
fi
echo "ready: $(elapsed) s; node $HOST CPUs=$CPUS RealMemory=$MEM state=$state"
echo "export SLURM_CONF=$SLURM_CONF"
