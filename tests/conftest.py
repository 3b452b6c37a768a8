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
SEEDS = len(CONFIG["fragment"]["seeds"])  # one fragment training job per (system, seed)
SHARDS = CONFIG["shards"]  # shard jobs per sharded stage


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
    """A --configfile overriding only the given top-level sections (always the tiny corpus)."""
    sections.setdefault("synthetic", {"preset": "tiny"})
    Path(path).write_text(yaml.safe_dump(sections))
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
