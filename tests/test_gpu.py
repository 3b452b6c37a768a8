"""GPU requests: the config's `gpus` keys reach exactly the GPU-capable rules (GPU_RULES) as the `gpu`
resource (which profiles/slurm turns into --gpus), and changing them reruns nothing."""
import re

import pytest
import torch

from conftest import SEEDS, planned_jobs, snakemake, write_config
from vgs.runtime import to_cpu, torch_device

GPU_RULES = {"vision_regions": "vision", "vision_convmap": "vision", "wordcnn_train": "wordcnn",
             "wordcnn_vectors": "wordcnn", "fragment_train": "fragment", "fragment_evaluate": "fragment",
             "caption_train": "caption", "caption_evaluate": "caption", "coscos_train": "coscos",
             "coscos_evaluate": "coscos", "patterns_ground": "patterns", "patterns_compare": "patterns"}
GPUS = {"vision": 1, "wordcnn": 2, "fragment": 3, "caption": 4, "coscos": 5, "patterns": 6}  # distinct, so a rule reading the wrong section shows


def dry_run_resources(workdir, configfile, *targets):
    """[(rule, {resource: value})] of every job `snakemake -n` plans, read from its job listing."""
    out = snakemake(workdir, "-n", targets=targets, configfile=configfile).stdout
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", out, re.M | re.S)
    res = []
    for rule, body in jobs:
        line = re.search(r"^\s+resources: (.*)$", body, re.M)
        res.append((rule, dict(kv.split("=", 1) for kv in line.group(1).split(", ")) if line else {}))
    return res


def test_gpu_resource_comes_from_each_stage_config(tmp_path):
    cfg = write_config(tmp_path / "gpus.yaml", **{s: {"gpus": n} for s, n in GPUS.items()})
    jobs = dry_run_resources(tmp_path, cfg, "all", "results/vision/convmap.h5")
    assert {r for r, _ in jobs} >= set(GPU_RULES)  # every GPU rule is planned at least once
    for rule, res in jobs:
        want = GPUS[GPU_RULES[rule]] if rule in GPU_RULES else None
        assert (int(res["gpu"]) if "gpu" in res else None) == want, (rule, res)
    # default config: no job asks for a GPU
    jobs = dry_run_resources(tmp_path, write_config(tmp_path / "tiny.yaml"), "all", "results/vision/convmap.h5")
    assert len(jobs) > 20 and all(int(res.get("gpu", 0)) == 0 for _, res in jobs), jobs


@pytest.mark.slow  # ~60 s: a real run; tests/test_pipeline.py checks the same on its tiny run
def test_changing_gpus_reruns_nothing(tmp_path):
    """A finished run of the smallest target through the GPU rules but vision_convmap (the oracle
    row, one epoch each), then only `gpus` changed: nothing to do; a params change: reruns."""
    fast = {"wordcnn": {"epochs": 1}, "fragment": {"epochs": 1}}
    targets = ("results/fragment/oracle/metrics.json",)
    snakemake(tmp_path, targets=targets, configfile=write_config(tmp_path / "a.yaml", **fast))
    changed = {s: {**fast.get(s, {}), "gpus": n} for s, n in GPUS.items()}
    assert planned_jobs(tmp_path, *targets, configfile=write_config(tmp_path / "b.yaml", **changed)) == {}
    # the check can fail: a params change in the same sections does rerun
    changed["fragment"]["margin"] = 2.0
    assert planned_jobs(tmp_path, *targets, configfile=write_config(tmp_path / "c.yaml", **changed)) == {
        "fragment_train": SEEDS, "fragment_evaluate": 1}
    log = (tmp_path / "results/logs/fragment_train_oracle_seed0.log").read_text()
    assert re.search(r"using (cpu|cuda:\d+ \(.+\))$", log, re.M), log[-2000:]


def test_torch_device_and_cpu_copies():
    dev = torch_device()
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu") and torch_device() is dev
    state = {"w": torch.ones(2, device=dev), "opt": [{"m": torch.zeros(1, device=dev)}, 3], "n": 1.5}
    cpu = to_cpu(state)
    assert cpu["w"].device.type == "cpu" and cpu["opt"][0]["m"].device.type == "cpu"
    assert cpu["opt"][1] == 3 and cpu["n"] == 1.5 and torch.equal(cpu["w"], torch.ones(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible GPU")
def test_fragment_scores_on_gpu_match_cpu():
    from vgs.fragment.model import FragmentModel, chunked_scores

    g = torch.Generator().manual_seed(0)
    feats, words = torch.randn(6, 4, 16, generator=g).numpy(), torch.randn(20, 8, generator=g).numpy()
    seg = torch.arange(20) // 4
    model = FragmentModel(16, 8, 12)
    cpu = chunked_scores(model, feats, words, seg, 5)
    gpu = chunked_scores(model.to("cuda"), feats, words, seg, 5)
    assert abs(cpu - gpu).max() < 1e-4
