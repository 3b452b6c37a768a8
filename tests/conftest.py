"""Shared fixtures: the tiny synthetic corpus (built once per session) and a Snakemake runner."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import vgs  # noqa: F401  (sets the reproducibility environment before any test imports torch)

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
TINY = CONFIG["synthetic"]["presets"]["tiny"]
# What every test run overrides: the tiny corpus, and fewer jobs than the defaults (sized for 1000
# images) where a job count proves nothing more: 2 shards per sharded stage, 2 seeds per 2015 system
# (still a spread and a merge). The suite runs the tiny main job about three times.
TEST_CONFIG = {"synthetic": {"preset": "tiny"}, "shards": {s: 2 for s in CONFIG["shards"]},
               "fragment": {"seeds": [0, 1]}}
SEEDS = len(TEST_CONFIG["fragment"]["seeds"])  # one fragment training job per (system, seed)
SHARDS = TEST_CONFIG["shards"]  # shard jobs per sharded stage


def snakemake(workdir, *args, targets=(), configfile=None, check=True):
    """Run the repository's Snakefile in `workdir` the way a user does; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]
    if configfile:
        cmd += ["--configfile", str(configfile)]
    proc = subprocess.run(cmd + ["--", *targets], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} {' '.join(targets)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir, *targets, configfile=None, args=()):
    """{rule: count} that `snakemake -n [args]` would run for `targets`."""
    out = snakemake(workdir, "-n", "--quiet", "rules", *args, targets=targets, configfile=configfile).stdout
    table = out.split("Job stats:")[1] if "Job stats:" in out else ""
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if m[0] != "total"}


def write_config(path, **sections):
    """A --configfile of TEST_CONFIG with the given top-level sections merged in (a section's keys
    replace TEST_CONFIG's keys of that section, which keeps its others)."""
    merged = {k: dict(v) for k, v in TEST_CONFIG.items()}
    for name, value in sections.items():
        merged[name] = {**merged.get(name, {}), **value} if isinstance(value, dict) else value
    Path(path).write_text(yaml.safe_dump(merged))
    return Path(path)


@pytest.fixture(scope="session")
def tiny_flickr(tmp_path_factory):
    """The tiny synthetic Flickr8k + FACC corpus, generated once through the package."""
    from vgs.synth.corpus import build_flickr

    root = tmp_path_factory.mktemp("synth") / "flickr8k"
    build_flickr(root, TINY, seed=0, threads=2)
    return root


@pytest.fixture(scope="session")
def tiny_manifests(tiny_flickr):
    """Ingest manifests of the tiny corpus."""
    from vgs.corpus.flickr import ingest

    out = tiny_flickr.parent / "manifests"
    ingest(tiny_flickr, out, threads=2)
    return out


@pytest.fixture(scope="session")
def tiny_words(tiny_manifests):
    from vgs.synth.corpus import build_words

    root = tiny_manifests.parent / "words"
    build_words(root, tiny_manifests / "utterances.tsv", TINY, seed=0, threads=2)
    return root
