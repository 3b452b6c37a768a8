"""Recall against training batch size for one system (MILAN's batch-size ablation, Table 4):
results/caption/batch_sweep.{json,md} from one recall row per batch size."""
import json
from pathlib import Path

import numpy as np
import yaml

import vgs.recall
from .. import retrieval
from ..runtime import atomic_path

PAPERS = Path(vgs.recall.__file__).with_name("papers.yaml")  # published numbers live there


def sweep_table(metric_files, batch_sizes, ks):
    rows = []
    for bs, path in sorted(zip(batch_sizes, metric_files)):
        row = json.loads(Path(path).read_text())
        tabs = [retrieval.recall_table(r["ranks"]["search"], r["ranks"]["annotation"], ks) for r in row["runs"]]
        mean = {d: {m: float(np.mean([t[d][m] for t in tabs])) for m in tabs[0][d]} for d in ("search", "annotation")}
        rows.append({"batch_size": int(bs), "system": row["system"], "seeds": [r["seed"] for r in row["runs"]],
                     "test": mean, "test_runs": tabs,
                     "best_epoch": [r["best_epoch"] for r in row["runs"]],
                     "best_dev_mean_recall": [r["best_dev_mean_recall"] for r in row["runs"]],
                     "p_at_k": row["precision_at_k"]["mean"]["search"],
                     "train_cpu_s": [t["train_cpu_s"] for t in row["timing"]],
                     "train_captions_per_s": [t["train_captions_per_s"] for t in row["timing"]]})
    return rows


def markdown(rows, ks, system, epochs):
    head = ["Batch size"] + [f"{n} R@{k}" for n in ("Search", "Annot.") for k in ks] + \
           ["P@1 (100 pairs)", "Best epoch", "Dev mean recall", "Train CPU s", "Train captions/s"]
    lines = [f"# Batch-size sweep of `{system}` (test split; mean over seeds)", "",
             f"Each batch size trains {epochs} epochs from the same seeds; in-batch negatives = batch size - 1.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["batch_size"])] + [f"{r['test'][d][f'R@{k}']:.1f}" for d in ("search", "annotation") for k in ks]
        cells += [f"{r['p_at_k'].get('P@1', float('nan')):.2f}", ",".join(map(str, r["best_epoch"])),
                  f"{np.mean(r['best_dev_mean_recall']):.1f}", f"{np.mean(r['train_cpu_s']):.0f}",
                  f"{np.mean(r['train_captions_per_s']):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    milan = yaml.safe_load(PAPERS.read_text()).get("milan2021_ablation")
    if milan:
        lines += ["", f"{milan['cite']}, {milan['data']} — published, for reference only (other corpus):", ""]
        for name in ("Best MILAN Model", "+ BATCH SIZE 128"):
            v = milan["rows"].get(name, {})
            lines.append(f"- {name}: " + ", ".join(f"{d} {m} {x}" for d in ("search", "annotation")
                                                    for m, x in v.get(d, {}).items()))
    return "\n".join(lines) + "\n"


def write_sweep(metric_files, batch_sizes, ks, system, epochs, json_out, md_out):
    rows = sweep_table(metric_files, batch_sizes, ks)
    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps({"system": system, "ks": list(ks), "rows": rows}, indent=1))
    with atomic_path(md_out) as tmp:
        tmp.write_text(markdown(rows, ks, system, epochs))
    return rows
