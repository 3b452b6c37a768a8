"""The cluster profiles: the tiny pipeline through profiles/slurm on a real one-node SLURM cluster
(sbatch, slurmctld, slurmd, munge; tests/slurm/start_slurm.sh), and through profiles/local.

The SLURM tests need root (they install Debian's SLURM if missing and run its daemons) and are
marked `slurm`; they skip, saying why, where that is impossible."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import h5py
import pytest

from conftest import REPO, SHARDS, TINY, planned_jobs, snakemake, write_config

# Pipeline targets run under SLURM; extend as stages land (e.g. "results/flickr8k_recall.json").
# VGS_SLURM_TARGETS="a b" overrides them for a one-off run.  The features run as 2 one-CPU shard jobs
# (SHARDED), which a 2-CPU node runs side by side.
TARGETS = os.environ.get("VGS_SLURM_TARGETS", "results/manifests/ingest_report.json resources/synthetic/words "
                                              "results/speech/fbank.h5").split()
FEATURES = "results/speech/fbank.h5"
SHARDED = {"shards": {"speech_fbank": 2}, "speech": {"fbank": {"threads": 1}}}

SLURM_DIR = REPO / "tests" / "slurm"
# Test-only overrides of the profile: this cluster has no slurmdbd (sacct cannot answer), so
# poll with squeue (MinJobAge=600 keeps finished jobs visible); poll often, as jobs are short.
FAST_POLL = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
             "--seconds-between-status-checks", "2"]


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster: yields its state dir (slurm.conf, logs, jobcomp.txt); stops it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("SLURM test cluster needs Linux")
    if os.geteuid() != 0:
        pytest.skip("SLURM test cluster needs root (installs Debian packages, runs slurmctld/slurmd as root)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and apt-get is unavailable to install it")
    state = tmp_path_factory.mktemp("slurm")
    t0 = time.time()
    proc = subprocess.run(["bash", str(SLURM_DIR / "start_slurm.sh"), str(state)], capture_output=True, text=True)
    try:
        if proc.returncode == 3:
            pytest.skip(f"cannot set up SLURM here: {proc.stderr.strip()[-500:]}")
        assert proc.returncode == 0, f"start_slurm.sh failed:\n{proc.stdout}\n{proc.stderr}"
        print(f"SLURM install + start: {time.time() - t0:.1f} s\n{proc.stdout}")
        mp = pytest.MonkeyPatch()
        mp.setenv("SLURM_CONF", str(state / "slurm.conf"))
        yield state
        mp.undo()
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh"), str(state)], capture_output=True, text=True)


def slurm_cmd(*args):
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


def submitted_jobs(log):
    """[(rule, threads, resources dict, slurm job id)] parsed from Snakemake's own output."""
    rules = {}  # snakemake jobid -> (rule, threads, resources)
    for m in re.finditer(r"^rule (\w+):\n((?:    .*\n)+)", log, re.M):
        body = m[2]
        jobid = re.search(r"^    jobid: (\d+)", body, re.M)[1]
        threads = re.search(r"^    threads: (\d+)", body, re.M)  # Snakemake leaves out threads: 1
        threads = int(threads[1]) if threads else 1
        res = dict(kv.split("=", 1) for kv in re.search(r"^    resources: (.*)$", body, re.M)[1].split(", "))
        rules[jobid] = (m[1], threads, res)
    subs = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    return [(*rules[j], sid) for j, sid in subs]


def jobcomp(state):
    """{job id: {field: value}} from slurmctld's jobcomp/filetxt record of finished jobs."""
    recs = {}
    for line in (state / "jobcomp.txt").read_text().splitlines():
        rec = dict(f.split("=", 1) for f in line.split() if "=" in f)
        recs[rec["JobId"]] = rec
    return recs


@pytest.mark.slurm
def test_pipeline_runs_as_slurm_jobs(slurm_cluster, tmp_path):
    state = slurm_cluster
    cpus = int(slurm_cmd("sinfo", "-h", "-o", "%c").split()[0])
    cfg = write_config(tmp_path / "tiny.yaml", **SHARDED)
    work = tmp_path / "work"
    planned = planned_jobs(work, *TARGETS, configfile=cfg)
    assert planned, "nothing to run"

    t0 = time.time()
    # --max-threads: one node with `cpus` CPUs cannot hold a job asking for more.  The features come
    # last, alone: only the two shards are ready, they are submitted together and the 2-CPU node runs
    # them side by side (in one invocation another ready 2-CPU job could run between them).  The
    # corpus comes first, alone: the manifest's digest param is taken when the DAG is built, and a
    # job-side run sees the generated corpus that the first DAG did not.
    profile = ["--workflow-profile", str(REPO / "profiles" / "slurm"), "--max-threads", str(cpus), *FAST_POLL]
    steps = [["resources/synthetic/flickr8k"], [t for t in TARGETS if t != FEATURES], [FEATURES]]
    log, jobs = "", []
    for targets in steps if FEATURES in TARGETS else (TARGETS,):
        proc = snakemake(work, *profile, targets=targets, configfile=cfg)
        log += proc.stdout + proc.stderr
        jobs += submitted_jobs(proc.stdout + proc.stderr)  # Snakemake's job ids restart per invocation
    wall = time.time() - t0
    run_ids = set(re.findall(r"SLURM run ID: (\S+)", log))
    print(f"pipeline under SLURM: {wall:.1f} s, {len(jobs)} jobs, runs {sorted(run_ids)}")

    # every planned job went through sbatch, once
    assert Counter(rule for rule, *_ in jobs) == Counter(planned)
    queue = {}
    for line in slurm_cmd("squeue", "--states=all", "--noheader", "-O",
                          "JobID:|,State:|,Name:|,Comment:|,StartTime:|,EndTime:|").splitlines():
        jid, st, name, comment, start, end = (f.strip() for f in line.split("|")[:6])
        queue[jid] = (st, name, comment, start, end)
    print(slurm_cmd("squeue", "--states=all", "-o", "%.6i %.10T %.38j %.40k %.4C %.6m %.19S %.19e"))
    comp = jobcomp(state)
    ctld = (state / "slurmctld.log").read_text()
    for rule, threads, res, sid in jobs:
        # squeue: finished, under this run's job name, tagged with the rule
        assert queue[sid][0] == "COMPLETED" and queue[sid][1] in run_ids, (sid, queue.get(sid))
        assert re.fullmatch(rf"rule_{rule}(_wildcards_\S+)?", queue[sid][2]), (sid, queue[sid])
        # slurmctld's completion record: the rule's threads, mem_mb and runtime were requested
        rec = comp[sid]
        assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", rec
        assert rec["ProcCnt"] == str(threads) and f"cpu={threads}," in rec["Tres"], (rule, rec)
        assert f"mem={res['mem_mb']}M" in rec["Tres"], (rule, res["mem_mb"], rec["Tres"])
        assert rec["TimeLimit"] == res["runtime"], (rule, res["runtime"], rec["TimeLimit"])
        assert rec["WorkDir"] == str(work)
        # started by the main scheduler or, on a loaded machine, by the backfill scheduler
        assert re.search(rf"(sched: Allocate|sched/backfill: _start_job: Started) JobId={sid} ", ctld), sid
        assert f"_job_complete: JobId={sid} done" in ctld

    # the outputs the jobs wrote on the "compute node"
    report = json.loads((work / "results/manifests/ingest_report.json").read_text())
    assert report["images"] == TINY["images"] and report["utterances"] == 5 * TINY["images"]
    assert (work / "resources/synthetic/words/words.ctm").stat().st_size > 0
    for rule, *_ in jobs:
        assert list((work / "results/benchmarks").glob(f"{rule}*.tsv")), rule  # + wildcards, if any

    # the two one-CPU feature shards ran as two SLURM jobs at the same time on the 2-CPU node
    shards = [sid for rule, threads, _, sid in jobs if rule == "speech_fbank"]
    assert len(shards) == 2 and all(t == 1 for rule, t, *_ in jobs if rule == "speech_fbank")
    (s1, e1), (s2, e2) = (queue[sid][3:5] for sid in shards)
    print(f"feature shards: SLURM jobs {shards[0]} {s1} .. {e1} and {shards[1]} {s2} .. {e2}")
    assert s1 < e2 and s2 < e1, "the shard jobs did not overlap in time"
    assert h5py.File(work / "results/speech/fbank.h5", "r")["feats"].__len__() == 5 * TINY["images"]


@pytest.mark.slurm
def test_gpu_resource_becomes_a_slurm_gpu_allocation(slurm_cluster, tmp_path):
    """The convention `resources: gpu=N`: N > 0 allocates N GPUs (--gpus), 0 allocates none.

    The test node has one pretend GPU (GRES gpu:1 on /dev/null): SLURM sets CUDA_VISIBLE_DEVICES
    only in the job that got it."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SLURM_DIR / "gpu_probe.smk"), "-d", str(tmp_path),
                           "--workflow-profile", str(REPO / "profiles" / "slurm"), *FAST_POLL],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    env = {n: dict(line.split("=", 1) for line in (tmp_path / f"gpu{n}.env").read_text().split()) for n in (0, 1)}
    assert env[1].get("CUDA_VISIBLE_DEVICES") == "0", env[1]
    assert "CUDA_VISIBLE_DEVICES" not in env[0], env[0]
    tres = dict(line.split("|")[:2] for line in
                slurm_cmd("squeue", "--states=all", "--noheader", "-O", "JobID:|,tres-per-job:").splitlines())
    assert tres[env[1]["SLURM_JOB_ID"]].strip() == "gres:gpu:1"
    assert tres[env[0]["SLURM_JOB_ID"]].strip() == "N/A"


def test_local_profile_runs_the_pipeline(tmp_path):
    """profiles/local: same targets on this machine; its default resources reach every job."""
    cfg = write_config(tmp_path / "tiny.yaml", **SHARDED)
    proc = snakemake(tmp_path, "--workflow-profile", str(REPO / "profiles" / "local"), targets=TARGETS, configfile=cfg)
    log = proc.stdout + proc.stderr
    assert "SLURM" not in log and not (tmp_path / ".snakemake" / "slurm_logs").exists()
    resources = re.findall(r"^    resources: (.*)$", log, re.M)
    assert resources and all(re.search(r"\bgpu=0\b", r) for r in resources), resources
    report = json.loads((tmp_path / "results/manifests/ingest_report.json").read_text())
    assert report["images"] == TINY["images"] and report["utterances"] == 5 * TINY["images"]
    assert (tmp_path / "resources/synthetic/words/words.ctm").stat().st_size > 0


def test_slurm_dry_run_at_flickr8k_size_lists_every_shard_job(tmp_path):
    """profiles/slurm -n at the flickr8k preset (8000 images): one SLURM job per shard of every
    sharded stage, each with its own resources (no cluster needed for a dry run)."""
    cfg = write_config(tmp_path / "f8k.yaml", synthetic={"preset": "flickr8k"})
    proc = snakemake(tmp_path, "--workflow-profile", str(REPO / "profiles" / "slurm"), "-n", configfile=cfg)
    log = proc.stdout + proc.stderr
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:")[1], re.M))
    aligners = 2  # the main aligner and the oracle (synthetic corpus)
    assert int(stats["speech_align"]) == aligners * SHARDS["speech_align"]
    for stage in ("speech_fbank", "vision_regions"):
        assert int(stats[stage]) == SHARDS[stage] and int(stats[f"{stage}_merge"]) == 1
    n = SHARDS["vision_regions"]
    assert all(f"wildcards: scatteritem={i}-of-{n}" in log for i in range(1, n + 1))
