"""Scaling benchmark (a script, not a test): run the main job at two corpus sizes and tabulate, per
stage, wall time, CPU time, peak RSS, items/s and the scaling exponent between the sizes, plus the
wall time projected for 16 cores from the measured job (shard) timings.

    python -m vgs.scaling run --workdir W --preset flickr8k [--cores 2] [-- snakemake args]
    python -m vgs.scaling table --run default=W1 --run flickr8k=W2 --out scaling.md

`run` starts the main job (`snakemake --cores N`, niced) in W with `synthetic.preset` and records
its wall and CPU seconds in W/scaling_run.json (runs can be repeated, e.g. stage by stage: times
add up).  `table` reads every job's Snakemake benchmark TSV (s, cpu_time, max_rss) and the job
graph (`snakemake -n --forceall`) of each workdir."""
import argparse
import heapq
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]

# Every rule of the main job: the item its time is proportional to (counted for items/s and the
# measured exponent) and the exponent `project` extrapolates with (cpu ∝ items^b): 1 per item, 2 all
# pairs, 0 the word corpus (its size is set by the vocabulary and word_tokens, alike at every preset)
# and work of fixed size (exports, figures of a fixed sample, the fast-vs-exact comparison).
RULES = {
    "synthetic_corpus": ("images", 1), "corpus_manifest": ("images", 1), "ingest": ("captions", 1),
    "synthetic_words": ("word_tokens", 0),
    "speech_align": ("captions", 1), "speech_align_merge": ("captions", 1), "speech_fbank": ("captions", 1),
    "speech_fbank_merge": ("captions", 1), "speech_ssl": ("captions", 1), "speech_windows": ("captions", 1),
    "wordcorpus_align": ("word_tokens", 0), "wordcorpus_fbank": ("word_tokens", 0),
    "wordcorpus_ssl": ("word_tokens", 0), "wordcorpus_windows": ("word_tokens", 0),
    "wordcnn_train": ("word_tokens", 0), "wordcnn_figures": ("word_tokens", 0),
    "wordcnn_table2": ("captions", 1), "wordcnn_vectors": ("captions", 1),
    "vision_export_onnx": (None, 0), "vision_regions": ("images", 1), "vision_regions_merge": ("images", 1),
    "vision_convmap": ("images", 1), "vision_convmap_merge": ("images", 1),
    "vision_proposal_quality": ("images", 1), "vision_figure": (None, 0),
    "fragment_textvec": ("captions", 1), "fragment_train": ("train_images", 1),
    "fragment_evaluate": ("test_images", 2), "fragment_figures": ("test_images", 1),
    "asr_caption_lm": ("train_captions", 1), "asr_decode": ("test_captions", 1), "asr_row": ("test_images", 1),
    "caption_train": ("train_captions", 1), "caption_evaluate": ("test_images", 2),
    "caption_towers": (None, 0), "caption_figure": (None, 0),
    "coscos_tokens": ("captions", 1), "coscos_train": ("train_captions", 1),
    "coscos_evaluate": ("test_images", 2), "coscos_tables": (None, 0), "coscos_figure": (None, 0),
    "patterns_vad": ("captions", 1), "patterns_vad_report": ("captions", 1), "patterns_ground": ("captions", 1),
    "patterns_cluster": ("captions", 1), "patterns_evaluate": ("captions", 1),
    "patterns_compare": (None, 0), "patterns_figures": (None, 0),
    "recall_table": ("test_images", 1),
}
# Stages whose work grows faster than their items, and why.
SUPERLINEAR = {
    "fragment_evaluate": "all pairs: test images x test captions (5 per image) x 20 regions x words "
                         "per caption -> O(N_test^2)",
    "fragment_train": "per epoch: train images x (40-image batch) pairs, linear, plus the dev split's "
                      "all-pairs recall for best-epoch selection, O(N_dev^2)",
    "caption_train": "per epoch: train captions, linear, plus the dev split's all-pairs recall for "
                     "best-epoch selection, O(N_dev^2)",
    "caption_evaluate": "all pairs: test images x test captions -> O(N_test^2)",
    "coscos_evaluate": "all pairs: test word tokens x test image fragments -> O(N_test^2)",
}
# Training rules: their items are counted per epoch run (read from the history in their JSON output),
# so runs with other epoch counts (or early stopping) compare per epoch.
TRAINING = ("wordcnn_train", "fragment_train", "caption_train", "coscos_train")
BENCH_COLS = ("s", "cpu_time", "max_rss")


def _snakemake(workdir, *args):
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]


def merged(base, over):
    """`base` with `over`'s keys replaced, nested mappings merged (as Snakemake merges config files)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run(workdir, preset, cores, extra, overrides=None):
    """The main job in `workdir` at `preset` (config keys of the YAML file `overrides` on top);
    appends its wall and CPU seconds to scaling_run.json."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "scaling.yaml"
    over = yaml.safe_load(Path(overrides).read_text()) if overrides else {}
    cfg.write_text(yaml.safe_dump(merged({"synthetic": {"preset": preset}}, over)))
    cmd = ["nice", "-n", "5", *_snakemake(workdir, "--cores", str(cores), "--configfile", str(cfg), *extra)]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    log = workdir / "scaling_run.json"
    runs = json.loads(log.read_text()) if log.exists() else []
    runs.append({"preset": preset, "cores": cores, "args": extra, "returncode": proc.returncode,
                 "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_avg": list(os.getloadavg())})
    log.write_text(json.dumps(runs, indent=2) + "\n")
    return proc.returncode


def jobs_of(workdir, cfg, targets=()):
    """Every job of the graph of `targets` (default: the main job): rule, wildcards, threads (as
    declared, up to 16), input/output files, benchmark."""
    out = subprocess.run(_snakemake(workdir, "-n", "--forceall", "--cores", "16", "--configfile", str(cfg),
                                    "--", *targets), capture_output=True, text=True, check=True).stdout
    jobs = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", out, re.M):
        f = dict(re.findall(r"^    (\w+): (.*)$", m[2], re.M))
        wc = dict(kv.split("=", 1) for kv in f.get("wildcards", "").split(", ") if "=" in kv)
        jobs.append({"rule": m[1], "wildcards": wc, "threads": int(f.get("threads", 1)),
                     "input": [x for x in f.get("input", "").split(", ") if x],
                     "output": [x for x in f.get("output", "").split(", ") if x],
                     "benchmark": f.get("benchmark")})
    return jobs


def items(workdir):
    """Item counts of a finished run (see RULES)."""
    w = Path(workdir) / "results"
    im = pd.read_csv(w / "manifests/images.tsv", sep="\t")
    split = pd.read_csv(w / "manifests/utterances.tsv", sep="\t").split
    n = {"images": len(im), "captions": len(split),
         "train_images": int((im.split == "train").sum()), "test_images": int((im.split == "test").sum()),
         "train_captions": int((split == "train").sum()), "test_captions": int((split == "test").sum())}
    for key, path in (("words", "speech/pocketsphinx/windows_report.json"),
                      ("word_tokens", "wordcorpus/windows_report.json")):
        if (w / path).exists():  # not after a run stopped before it
            n[key] = json.loads((w / path).read_text())["windows"]
    return n


def measure(workdir):
    """Per job: its benchmark (wall s, CPU s, max RSS MB) joined to the job graph."""
    workdir = Path(workdir)
    args = json.loads((workdir / "scaling_run.json").read_text())[-1]["args"]
    targets = args[args.index("--") + 1:] if "--" in args else []
    jobs = [j for j in jobs_of(workdir, workdir / "scaling.yaml", targets) if j["benchmark"]]
    # jobs that never ran (a run stopped early, or a failed job under --keep-going) are left out
    # of the table and listed in its summary
    not_run = [j for j in jobs if not (workdir / j["benchmark"]).exists()]
    jobs = [j for j in jobs if j not in not_run]
    for j in jobs:
        b = pd.read_csv(workdir / j["benchmark"], sep="\t").iloc[-1]
        j.update({k: float(b[k]) if b[k] != "-" else 0.0 for k in BENCH_COLS})
        if j["rule"] in TRAINING:
            hist = json.loads((workdir / next(o for o in j["output"] if o.endswith(".json"))).read_text())
            j["epochs"] = sum(h.get("epoch", 1) >= 1 for h in hist["history"])  # coscos records epoch 0
    return jobs, sorted(stage_key(j) for j in not_run)


def stage_key(job):
    """The table row of a job: its rule and non-shard wildcards (shards of one stage are summed)."""
    wc = [v for k, v in job["wildcards"].items() if k != "scatteritem"]
    return job["rule"] + (f"[{','.join(wc)}]" if wc else "")


def stages(jobs):
    rows = defaultdict(lambda: {"jobs": 0, "s": 0.0, "cpu_time": 0.0, "max_rss": 0.0})
    for j in jobs:
        r = rows[stage_key(j)]
        r["rule"] = j["rule"]
        r["jobs"] += 1
        r["s"] += j["s"]
        r["cpu_time"] += j["cpu_time"]
        r["max_rss"] = max(r["max_rss"], j["max_rss"])
        r["epochs"] = j.get("epochs")  # one training job per row (seed and system are wildcards)
    return dict(rows)


def simulate(jobs, cores, duration):
    """Makespan of the job graph on `cores` cores: greedy list scheduling (ready jobs start as soon
    as their threads are free, in graph order), each job running `duration(job)` seconds on
    min(threads, cores) cores — what Snakemake's scheduler does with measured job times."""
    producer = {o: i for i, j in enumerate(jobs) for o in j["output"]}
    deps = [{producer[x] for x in j["input"] if x in producer} for j in jobs]
    waiting = [len(d) for d in deps]
    children = defaultdict(list)
    for i, d in enumerate(deps):
        for p in d:
            children[p].append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    running, free, now = [], cores, 0.0
    while ready or running:
        for i in list(ready):
            need = min(jobs[i]["threads"], cores)
            if need <= free:
                ready.remove(i)
                free -= need
                heapq.heappush(running, (now + duration(jobs[i]), i, need))
        now, i, need = heapq.heappop(running)
        free += need
        for c in children[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    return now


def exponent(a, b, na, nb):
    # sizes less than 1.5x apart (the word corpus, alike at every preset) give no exponent: noise
    # over a tiny log ratio
    if not (a and b and na and nb) or abs(math.log(nb / na)) < math.log(1.5):
        return None
    return math.log(b / a) / math.log(nb / na)


def table(runs, out):
    """Markdown + JSON table of `runs` {label: workdir} (two sizes: the exponent is between them)."""
    labels = list(runs)
    meas, not_run = {}, {}
    for k, w in runs.items():
        meas[k], not_run[k] = measure(w)
    counts = {k: items(w) for k, w in runs.items()}
    st = {k: stages(v) for k, v in meas.items()}
    keys = sorted(set().union(*st.values()), key=lambda k: min(
        i for lab in labels for i, j in enumerate(meas[lab]) if stage_key(j) == k) if any(k in st[lab] for lab in labels) else 0)
    rows = []
    for k in keys:
        rule = next(st[lab][k]["rule"] for lab in labels if k in st[lab])
        item = RULES.get(rule, (None, 0))[0]
        row = {"stage": k, "item": f"{item} x epochs" if item and rule in TRAINING else item}
        for lab in labels:
            r = st[lab].get(k)
            n = counts[lab].get(item) if item else None
            if n and r and r["epochs"]:
                n *= r["epochs"]
            row[lab] = None if r is None else {
                "jobs": r["jobs"], "wall_s": round(r["s"], 1), "cpu_s": round(r["cpu_time"], 1),
                "peak_rss_mb": round(r["max_rss"]), "items": n, "epochs": r["epochs"],
                "items_per_cpu_s": round(n / r["cpu_time"], 1) if n and r["cpu_time"] else None}
        if len(labels) == 2 and all(row[lab] for lab in labels) and item:
            a, b = (row[lab] for lab in labels)
            # both: a job's CPU seconds also count threads that spin while cores are idle, its
            # wall seconds the cores it had to share
            # training: per epoch (cpu/epoch ∝ items^b), as the sizes may have run other epoch counts
            ep = lambda x: x["epochs"] or 1
            for col in ("cpu", "wall"):
                e = exponent(a[col + "_s"] / ep(a), b[col + "_s"] / ep(b), a["items"] / ep(a), b["items"] / ep(b))
                row["exponent_" + col] = None if e is None else round(e, 2)
        row["superlinear"] = SUPERLINEAR.get(rule) or (
            "measured exponent > 1.15" if min(row.get("exponent_cpu") or 0, row.get("exponent_wall") or 0) > 1.15
            else None)
        rows.append(row)
    summary = {}
    for lab, w in runs.items():
        jobs = meas[lab]
        rec = json.loads((Path(w) / "scaling_run.json").read_text())
        summary[lab] = {
            "items": counts[lab], "jobs": len(jobs), "not_run": not_run[lab],
            "cpu_s_jobs": round(sum(j["cpu_time"] for j in jobs), 1),
            "measured_wall_s": round(sum(r["wall_s"] for r in rec), 1),
            "measured_cpu_s": round(sum(r["cpu_s"] for r in rec), 1),
            "measured_cores": sorted({r["cores"] for r in rec}),
            "peak_rss_mb": round(max(j["max_rss"] for j in jobs)),
            # a job takes cpu_time / threads (its threads busy) .. cpu_time (one core busy)
            "projected_16_cores_wall_s": [round(simulate(jobs, 16, lambda j: j["cpu_time"] / j["threads"]), 1),
                                          round(simulate(jobs, 16, lambda j: j["cpu_time"]), 1)],
            "projected_2_cores_wall_s": [round(simulate(jobs, 2, lambda j: j["cpu_time"] / j["threads"]), 1),
                                         round(simulate(jobs, 2, lambda j: j["cpu_time"]), 1)],
        }
    result = {"runs": {k: str(v) for k, v in runs.items()}, "summary": summary, "stages": rows}
    Path(out).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(out).write_text(markdown(result, labels))
    return result


def markdown(res, labels):
    def cell(r, k):
        return "—" if r is None or r.get(k) is None else str(r[k])

    head = ["stage", "item"] + [f"{lab} {c}" for lab in labels for c in
                                ("jobs", "wall s", "CPU s", "peak RSS MB", "items", "items/CPU-s")]
    head += ["exponent (CPU)", "exponent (wall)", "superlinear"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["stages"]:
        cells = [r["stage"], r["item"] or "—"]
        for lab in labels:
            x = r[lab]
            cells += [cell(x, k) for k in ("jobs", "wall_s", "cpu_s", "peak_rss_mb", "items", "items_per_cpu_s")]
        cells += [cell(r, "exponent_cpu"), cell(r, "exponent_wall"), r["superlinear"] or ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for lab in labels:
        s = res["summary"][lab]
        lines.append(f"- **{lab}** ({s['items']['images']} images, {s['items']['captions']} captions): "
                     f"{s['jobs']} jobs, {s['cpu_s_jobs']} CPU-s in jobs; measured on {s['measured_cores']} "
                     f"cores (shared machine): {s['measured_wall_s']} s wall, {s['measured_cpu_s']} CPU-s; "
                     f"peak RSS {s['peak_rss_mb']} MB; projected wall from the job timings: 16 cores "
                     f"{s['projected_16_cores_wall_s'][0]}–{s['projected_16_cores_wall_s'][1]} s, 2 cores "
                     f"{s['projected_2_cores_wall_s'][0]}–{s['projected_2_cores_wall_s'][1]} s "
                     f"(each job taking CPU/threads .. CPU seconds)"
                     + (f"; NOT RUN (left out): {', '.join(s['not_run'])}" if s["not_run"] else ""))
    return "\n".join(lines) + "\n"


SIZES = {"default": {"images": 1000, "captions": 5000, "train_images": 800, "test_images": 100,
                     "train_captions": 4000, "test_captions": 500},
         "flickr8k": {"images": 8000, "captions": 40000, "train_images": 6000, "test_images": 1000,
                      "train_captions": 30000, "test_captions": 5000}}


def rule_of(stem, rules):
    return max((r for r in rules if stem == r or stem.startswith(r + "_")), key=len, default=None)


def project(bench_dir, out, shards=None):
    """Per-stage CPU, wall and peak RSS measured by one main job at the default preset (its
    benchmark TSVs in `bench_dir`, sharded or not), CPU extrapolated to Flickr8k's size with RULES
    (cpu_8k = cpu_default x (n_8k / n_default)^b), and the main job's wall time at both sizes
    replayed on the sharded job graph (Snakemake dry runs of this workflow, `shards` overriding
    config's) on 2 and 16 cores, each job's CPU = its rule's measured CPU per job / shard count."""
    stems = {f.stem: pd.read_csv(f, sep="\t").iloc[-1] for f in sorted(Path(bench_dir).glob("*.tsv"))}
    growth = {p: {r: (SIZES[p].get(it, 1) / SIZES["default"].get(it, 1)) ** b for r, (it, b) in RULES.items()}
              for p in SIZES}
    rows, summary = [], {}
    for rule, (item, b) in RULES.items():
        m = [v for k, v in stems.items() if rule_of(k, RULES) == rule]
        c = sum(float(v["cpu_time"]) for v in m)
        rows.append({"stage": rule, "item": item, "exponent": b, "jobs_measured": len(m),
                     "default_cpu_s": round(c, 1) if m else None,
                     "default_wall_s": round(sum(float(v["s"]) for v in m), 1) if m else None,
                     "default_peak_rss_mb": round(max(float(v["max_rss"]) for v in m)) if m else None,
                     "flickr8k_cpu_s": round(c * growth["flickr8k"][rule], 1) if m else None,
                     "superlinear": SUPERLINEAR.get(rule)})
    for preset in SIZES:
        with tempfile.TemporaryDirectory() as w:
            cfg = Path(w) / "c.yaml"
            cfg.write_text(yaml.safe_dump({"synthetic": {"preset": preset}, **({"shards": shards} if shards else {})}))
            jobs = jobs_of(w, cfg)
        missing = set()
        for j in jobs:
            # the measured job of this one: same rule and wildcards, one per seed, unsharded
            wc = j["wildcards"]
            stem = "_".join([j["rule"], *(v for k, v in wc.items() if k not in ("scatteritem", "seed"))])
            if stem not in stems or j["rule"] not in RULES:
                j["cpu_time"] = 0.0
                missing |= set() if j["rule"] == "all" else {j["rule"]}
                continue
            n = int(wc["scatteritem"].split("-of-")[1]) if "scatteritem" in wc else 1
            j["cpu_time"] = float(stems[stem]["cpu_time"]) * growth[preset][j["rule"]] / n
        summary[preset] = {
            "jobs": len(jobs), "cpu_s": round(sum(j["cpu_time"] for j in jobs), 1),
            "unmeasured_rules": sorted(missing),
            "wall_2_cores_s": [round(simulate(jobs, 2, lambda j: j["cpu_time"] / j["threads"]), 1),
                               round(simulate(jobs, 2, lambda j: j["cpu_time"]), 1)],
            "wall_16_cores_s": [round(simulate(jobs, 16, lambda j: j["cpu_time"] / j["threads"]), 1),
                                round(simulate(jobs, 16, lambda j: j["cpu_time"]), 1)]}
    res = {"bench_dir": str(bench_dir), "shards": shards, "summary": summary, "stages": rows}
    Path(out).with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["| stage | item | b | default CPU s (measured) | default wall s | default peak RSS MB | "
             "flickr8k CPU s (extrapolated) | superlinear |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join("—" if v is None else str(v) for v in (
            r["stage"], r["item"], r["exponent"], r["default_cpu_s"], r["default_wall_s"],
            r["default_peak_rss_mb"], r["flickr8k_cpu_s"], r["superlinear"] or "")) + " |")
    for preset, s in summary.items():
        lines.append(f"\n- **{preset}**: {s['jobs']} jobs, {s['cpu_s']} CPU-s; replayed wall "
                     f"2 cores {s['wall_2_cores_s'][0]}–{s['wall_2_cores_s'][1]} s, 16 cores "
                     f"{s['wall_16_cores_s'][0]}–{s['wall_16_cores_s'][1]} s; rules without a "
                     f"measurement (0 s): {', '.join(s['unmeasured_rules']) or 'none'}")
    Path(out).write_text("\n".join(lines) + "\n")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--workdir", required=True)
    r.add_argument("--preset", required=True)
    r.add_argument("--cores", type=int, default=2)
    r.add_argument("--overrides", help="YAML file of config keys set on top of the preset (e.g. fewer epochs)")
    r.add_argument("extra", nargs="*", help="more snakemake arguments (after --), e.g. targets")
    t = sub.add_parser("table")
    t.add_argument("--run", action="append", required=True, help="label=workdir (two of them)")
    t.add_argument("--out", required=True, help="markdown file (a .json beside it)")
    pj = sub.add_parser("project")
    pj.add_argument("--bench", required=True, help="benchmark folder of a default-preset main job")
    pj.add_argument("--out", required=True)
    pj.add_argument("--shards", help='JSON, e.g. {"speech_align": 64}: shard counts of the replay')
    a = ap.parse_args(argv)
    if a.cmd == "project":
        project(a.bench, a.out, json.loads(a.shards) if a.shards else None)
        print(Path(a.out).read_text())
        return 0
    if a.cmd == "run":
        return run(a.workdir, a.preset, a.cores, a.extra, a.overrides)
    table(dict(x.split("=", 1) for x in a.run), a.out)
    print(Path(a.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
