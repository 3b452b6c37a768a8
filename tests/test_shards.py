"""Sharded stages (Snakemake scattergather, config `shards`): the merged files are the same for 1 and
3 shards, and a killed run keeps its finished shards."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import REPO, planned_jobs, snakemake, write_config
from vgs.runtime import shard_slice

SHARDED = ("speech_align", "speech_fbank", "vision_regions", "vision_convmap")
FILES = {  # merged outputs compared byte for byte
    "bytes": ["results/speech/pocketsphinx/word_segments.tsv", "results/speech/fbank.ark",
              "results/speech/fbank.scp"],
    "h5": ["results/speech/fbank.h5", "results/vision/regions.h5", "results/vision/convmap.h5"],
}
TARGETS = [*FILES["bytes"], *FILES["h5"], "results/speech/pocketsphinx/textgrids",
           "results/speech/pocketsphinx/alignment_report.json", "results/speech/fbank_report.json",
           "results/vision/regions_stats.json"]
# report keys that measure this run's speed, not its result
TIMING = {"wall_seconds", "cpu_seconds", "x_real_time", "shards", "wall_s", "images_per_s", "s_per_image",
          "cpu_s_per_image", "load_avg_1min", "crops_per_s", "proposal_thread_s_per_image",
          "cnn_s_per_image", "totals"}


def test_shard_slices_cover_every_row_once_in_order():
    for n in (0, 1, 2, 7, 12, 100):
        for k in (1, 2, 3, 5, 16):
            rows = [i for s in range(1, k + 1) for i in range(n)[shard_slice(n, f"{s}-of-{k}")]]
            assert rows == list(range(n))
    assert shard_slice(10, "2-of-3") == slice(3, 6)
    assert shard_slice(2, "1-of-3") == slice(0, 0)  # more shards than rows: empty shards
    with pytest.raises(ValueError):
        shard_slice(10, "4-of-3")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The sharded stages' merged outputs for 1 shard, then for 3 shards (same workdir)."""
    work = tmp_path_factory.mktemp("shards")
    for n in (1, 3):
        cfg = write_config(work / f"shards{n}.yaml", shards={s: n for s in SHARDED})
        snakemake(work, configfile=cfg, targets=TARGETS)
        for stage in SHARDED:  # each shard a job of its own, with its own benchmark
            assert len(list((work / "results/benchmarks").glob(f"{stage}_*of-{n}.tsv"))) == n, stage
        for t in TARGETS:
            dst = work / f"n{n}" / t
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (work / t).is_dir() else shutil.copy2)(work / t, dst)
    assert not list((work / "results" / "shards").rglob("*.h5")), "temp shard files left behind"
    return work


def h5_content(path):
    """{name: (array, attrs)} of every dataset, and the file attributes."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj[()], dict(obj.attrs))
        f.visititems(visit)
        out["/"] = dict(f.attrs)
    return out


def test_one_and_three_shards_give_identical_files(runs):
    a, b = runs / "n1", runs / "n3"
    for f in FILES["bytes"]:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    tg = "results/speech/pocketsphinx/textgrids"
    names = sorted(p.name for p in (a / tg).iterdir())
    assert len(names) > 40 and names == sorted(p.name for p in (b / tg).iterdir())
    assert all((a / tg / n).read_bytes() == (b / tg / n).read_bytes() for n in names)
    for f in FILES["h5"]:
        x, y = h5_content(a / f), h5_content(b / f)
        assert x.keys() == y.keys(), f
        for name in x:
            if name == "/":
                assert json.dumps(x[name], default=str, sort_keys=True) == json.dumps(y[name], default=str, sort_keys=True)
                continue
            assert np.array_equal(x[name][0], y[name][0]), (f, name)
            assert x[name][1] == y[name][1], (f, name)
        byte_equal = (a / f).read_bytes() == (b / f).read_bytes()
        print(f"{f}: {len(x) - 1} datasets array-equal, attributes equal, byte-equal: {byte_equal}")
    for f in ("results/speech/pocketsphinx/alignment_report.json", "results/speech/fbank_report.json",
              "results/vision/regions_stats.json"):
        ra, rb = (json.loads((d / f).read_text()) for d in (a, b))
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}, f
    rep = json.loads((b / "results/speech/pocketsphinx/alignment_report.json").read_text())
    assert rep["shards"] == 3 and rep["aligned"] > 50


def test_killed_run_keeps_finished_shards(runs, tmp_path):
    """SIGKILL a 3-shard region extraction (one job at a time) once its second shard job has
    started, so the first is finished and recorded; the rerun plans only the unfinished shards,
    then gives the same store."""
    work = tmp_path / "killed"
    shutil.copytree(runs, work, symlinks=True, ignore=shutil.ignore_patterns("n1", "n3", "logs"))
    shutil.rmtree(work / "results" / "vision")
    cfg = runs / "shards3.yaml"
    logs = work / "results" / "logs"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "1",
           "--configfile", str(cfg), "--", "results/vision/regions.h5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while len(list(logs.glob("vision_regions_*-of-3.log"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.parent.name for p in (work / "results/shards/vision_regions").glob("*/regions.h5"))
    assert len(done) == 1, done
    snakemake(work, "--unlock", configfile=cfg)
    planned = planned_jobs(work, "results/vision/regions.h5", configfile=cfg)
    print(f"killed with shard {done} finished: {planned} still to run")
    assert planned == {"vision_regions": 2, "vision_regions_merge": 1}
    snakemake(work, configfile=cfg, targets=["results/vision/regions.h5"])
    x, y = h5_content(work / "results/vision/regions.h5"), h5_content(runs / "n3/results/vision/regions.h5")
    assert all(np.array_equal(x[k][0], y[k][0]) for k in x if k != "/")
