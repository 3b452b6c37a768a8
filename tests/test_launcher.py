"""The launcher ./vgs.sh: Snakemake and pytest arguments reach them unchanged; set-up runs only when
its files changed (their sha256 in .venv/.vgs-setup), and says what to do when apt-get needs root."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import snakemake

from conftest import REPO, write_config

SETUP_FILES = ["envs/requirements.txt", "envs/apt.txt", "envs/setup.sh", "envs/vgs.post-deploy.sh"]


def vgs(root, *args, cwd=None, env=None, prefix=()):
    """./vgs.sh of checkout `root` with `args`; stdout and stderr together."""
    cmd = [*prefix, str(Path(root) / "vgs.sh"), *map(str, args)]
    return subprocess.run(cmd, cwd=cwd or root, env={**os.environ, **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def command_line(out):
    """The argv Snakemake reports having received (its `Command:` header line)."""
    return re.search(r"^\s*Command: (.*)$", out, re.M).group(1)


@pytest.fixture(scope="module")
def set_up():
    """This checkout set up through the launcher (nothing to do when its stamp is current)."""
    proc = vgs(REPO, "setup")
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def test_run_defaults_to_every_core_and_rule_all(set_up, tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml")
    p = vgs(REPO, "run", "-d", tmp_path, "--configfile", cfg, "-n", "--config", "speech={aligner: oracle}")
    assert p.returncode == 0, p.stdout
    assert "vgs: set-up is current" in p.stdout  # the second invocation does nothing but the run
    assert command_line(p.stdout).endswith(
        f"--snakefile {REPO / 'Snakefile'} --cores all -d {tmp_path} --configfile {cfg} -n "
        "--config speech={aligner: oracle}")
    assert "rule all:" in p.stdout  # the default target
    # A value with a space arrived as one argument: the override took effect.
    assert "results/speech/oracle/alignment_report.json" in p.stdout


def test_run_passes_cores_forcerun_and_targets(set_up, tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml")
    p = vgs(REPO, "run", "--cores", "1", "-d", tmp_path, "--configfile", cfg, "-n", "--forcerun", "ingest",
            "--", "results/manifests/ingest_report.json")
    assert p.returncode == 0, p.stdout
    assert "--cores all" not in command_line(p.stdout)
    jobs = re.findall(r"^rule (\w+):", p.stdout, re.M)
    assert sorted(jobs) == ["corpus_manifest", "ingest", "synthetic_corpus"]  # the target and what it needs
    ingest = p.stdout[p.stdout.index("rule ingest:"):]
    assert "reason: Forced execution" in ingest


def test_run_leaves_the_job_count_to_a_profile(set_up, tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml")
    p = vgs(REPO, "run", "--workflow-profile", "profiles/slurm", "-d", tmp_path, "--configfile", cfg, "-n")
    assert p.returncode == 0, p.stdout
    assert "--cores" not in command_line(p.stdout)
    assert "Using workflow specific profile profiles/slurm" in p.stdout
    assert "rule all:" in p.stdout


def test_test_runs_the_readme_command_with_extra_arguments(set_up):
    p = vgs(REPO, "test", "--collect-only", "tests/test_gpu.py")
    assert p.returncode == 0, p.stdout
    assert 'running: python -m pytest -q -m "not slow" --collect-only tests/test_gpu.py' in p.stdout
    # The README's `-m "not slow"` deselects test_gpu.py's tests marked slow.
    slow = (REPO / "tests" / "test_gpu.py").read_text().count("@pytest.mark.slow")
    deselected = re.search(r"^\d+/\d+ tests collected \((\d+) deselected\)", p.stdout, re.M)
    assert slow >= 1 and deselected and int(deselected[1]) == slow, p.stdout


def test_ci_runs_the_readme_test_command():
    readme = [line.split("#")[0].strip() for line in (REPO / "README.md").read_text().splitlines()
              if line.startswith("./vgs.sh test")]
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert readme and readme[0] == ci


STAND_IN_SETUP = """#!/usr/bin/env bash
# Stands in for the real set-up (pip, apt-get): records that it ran; SETUP_FAIL=1 makes it fail.
set -e
cd "$(dirname "$0")/.."
[ -z "${SETUP_FAIL:-}" ] || exit 1
echo ran >> setup.log
mkdir -p .venv/bin
ln -sf PYTHON .venv/bin/python
ln -sf SNAKEMAKE .venv/bin/snakemake
"""


@pytest.fixture
def sandbox(tmp_path):
    """A copy of the launcher and its set-up files, with a stand-in envs/setup.sh."""
    (tmp_path / "envs").mkdir()
    shutil.copy2(REPO / "vgs.sh", tmp_path)
    for f in SETUP_FILES:
        shutil.copy2(REPO / f, tmp_path / f)
    bindir = Path(sys.executable).parent
    (tmp_path / "envs" / "setup.sh").write_text(
        STAND_IN_SETUP.replace("PYTHON", sys.executable).replace("SNAKEMAKE", str(bindir / "snakemake")))
    return tmp_path


def setups(root):
    log = root / "setup.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_setup_runs_exactly_when_its_files_changed(sandbox):
    p = vgs(sandbox, "setup")
    assert p.returncode == 0 and setups(sandbox) == 1 and "set-up needed: no set-up yet" in p.stdout
    stamp = (sandbox / ".venv" / ".vgs-setup").read_text().splitlines()
    assert [line.split()[1] for line in stamp] == SETUP_FILES

    p = vgs(sandbox, "setup")
    assert setups(sandbox) == 1 and "set-up is current" in p.stdout
    p = vgs(sandbox, "run", "--version")  # a second run: no set-up, just Snakemake
    assert p.returncode == 0 and setups(sandbox) == 1, p.stdout
    assert p.stdout.splitlines()[-1] == snakemake.__version__

    with open(sandbox / "envs" / "requirements.txt", "a") as f:
        f.write("jiwer==4.0.0\n")
    p = vgs(sandbox, "setup")
    assert setups(sandbox) == 2 and "set-up needed: envs/requirements.txt" in p.stdout

    with open(sandbox / "envs" / "apt.txt", "a") as f:
        f.write("flite\n")
    p = vgs(sandbox, "run", "--version", env={"SETUP_FAIL": "1"})
    assert p.returncode != 0 and setups(sandbox) == 2
    assert snakemake.__version__ not in p.stdout  # a failed set-up stops before the run
    p = vgs(sandbox, "test", "--version")  # ... and is not recorded: the next command tries again
    assert setups(sandbox) == 3 and "set-up needed: envs/apt.txt" in p.stdout

    vgs(sandbox, "setup", "--force")
    assert setups(sandbox) == 4
    shutil.rmtree(sandbox / ".venv")
    p = vgs(sandbox, "setup")
    assert setups(sandbox) == 5 and "no set-up yet" in p.stdout


def test_missing_debian_package_without_root_says_what_to_run():
    """The real set-up, as an ordinary user, with a Debian package that is not installed."""
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root without setpriv: cannot run as an ordinary user")
        prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")  # nobody
    else:
        prefix = ()
    root = Path(tempfile.mkdtemp(prefix="vgs-user-"))  # not under pytest's root-only tmp dir
    try:
        (root / "envs").mkdir()
        shutil.copy2(REPO / "vgs.sh", root)
        for f in SETUP_FILES:
            shutil.copy2(REPO / f, root / f)
        (root / "envs" / "apt.txt").write_text("sox  # installed\nvgs-no-such-package\n")
        for d in (root, root / "envs"):
            d.chmod(0o755)
        p = vgs(root, "setup", prefix=prefix, env={"VGS_SKIP_APT": ""})
        assert p.returncode == 1, p.stdout
        assert "missing Debian packages: vgs-no-such-package\n" in p.stdout
        assert "installing them needs root" in p.stdout
        assert "sudo apt-get update && sudo apt-get install -y vgs-no-such-package" in p.stdout
        assert "VGS_SKIP_APT=1" in p.stdout
        assert not (root / ".venv").exists()  # stopped before anything else
    finally:
        shutil.rmtree(root)
