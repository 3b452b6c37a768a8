"""envs/: the conda env of every rule (envs/vgs.yaml) agrees with the Debian + .venv set-up, and
`snakemake --lint` stays clean (it asks every rule for a conda env and a log, and helper functions
in common.smk)."""
import re
import subprocess
import sys

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

ENVS = REPO / "envs"


def pins(lines):
    """{canonical name: requirement} of pip requirement lines (comments, blanks, options dropped)."""
    reqs = [Requirement(line.split("#")[0]) for line in lines
            if line.split("#")[0].strip() and not line.lstrip().startswith("-")]
    out = {canonicalize_name(r.name): str(r) for r in reqs}
    assert len(out) == len(reqs), "a package listed twice"
    return out


def conda_env():
    return yaml.safe_load((ENVS / "vgs.yaml").read_text())["dependencies"]


def test_conda_env_pins_equal_requirements():
    want = pins((ENVS / "requirements.txt").read_text().splitlines())
    pip = next(d["pip"] for d in conda_env() if isinstance(d, dict))
    have = pins(pip)
    problems = [f"  add to its pip list:      - {want[n]}" for n in want if have.get(n) != want[n]]
    problems += [f"  remove from its pip list: - {have[n]}" for n in have if want.get(n) != have[n]]
    assert not problems, ("envs/vgs.yaml (the conda env of every rule) must pin what "
                          "envs/requirements.txt pins:\n" + "\n".join(problems))


def test_every_debian_package_is_named_in_the_conda_env():
    apt = {p for line in (ENVS / "apt.txt").read_text().splitlines() for p in line.split("#")[0].split()}
    named = {p.strip() for m in re.findall(r"# Debian: ([a-z0-9.+-]+(?:, *[a-z0-9.+-]+)*)",
                                            (ENVS / "vgs.yaml").read_text())
             for p in m.split(",")}
    assert apt == named, (f"envs/vgs.yaml must name each package of envs/apt.txt in a '# Debian: ...' "
                          f"comment beside its conda-forge counterpart (or say there is none); "
                          f"unnamed: {sorted(apt - named)}, not in apt.txt: {sorted(named - apt)}")


def test_snakemake_lint_is_clean(tmp_path):
    p = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                        "--lint"], capture_output=True, text=True)
    assert p.returncode == 0, f"snakemake --lint:\n{p.stdout}\n{p.stderr}"
