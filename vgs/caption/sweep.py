"""Recall against one training key of one system (MILAN's ablations), one recall row per value:
batch size (results/caption/batch_sweep.*, Table 4), the fixed length captions are cropped and padded
to (length_sweep.*, sec. 4: 8 s on FACC), the initialisation -- from scratch or pretrained on a second
corpus (pretrain.*, Table 4 "+ NO PRETRAINING")."""
import json
from pathlib import Path

import numpy as np
import yaml

import vgs.recall
from .. import retrieval
from ..cache import read_json
from ..runtime import atomic_path

PAPERS = Path(vgs.recall.__file__).with_name("papers.yaml")  # published numbers live there

# per swept key: column head, title, what a point means, MILAN Table 4 rows shown for reference
SWEPT = {
    "batch_size": ("Batch size", "Batch-size sweep",
                   "Each batch size trains {epochs} epochs from the same seeds; in-batch negatives = batch size - 1.",
                   ("Best MILAN Model", "+ BATCH SIZE 128")),
    "fixed_seconds": ("Length (s)", "Length sweep",
                      "Every caption cropped and zero-padded to the length (in the features' frames), in training "
                      "and evaluation; {epochs} epochs from the same seeds. MILAN pads or crops FACC to 8 s, the "
                      "best of the lengths it tried (no table published).", ()),
    "init": ("Initialisation", "Pretraining then fine-tuning",
             "Both rows train {epochs} epochs on the main corpus from the same seeds; the fine-tuned row starts from "
             "the system pretrained on the second corpus (best epoch on that corpus's dev split).",
             ("+ SHALLOW SPEECH ENC.", "+ NO PRETRAINING")),
}


def sweep_table(metric_files, values, ks, key="batch_size"):
    rows = []
    points = list(zip(values, metric_files))
    if all(isinstance(v, (int, float)) for v in values):
        points.sort()  # numbers ascending; labels (init) in the order given
    for value, path in points:
        row = read_json(path, ["runs", "system"])
        tabs = [retrieval.recall_table(r["ranks"]["search"], r["ranks"]["annotation"], ks) for r in row["runs"]]
        mean = {d: {m: float(np.mean([t[d][m] for t in tabs])) for m in tabs[0][d]} for d in ("search", "annotation")}
        rows.append({key: value, "system": row["system"], "seeds": [r["seed"] for r in row["runs"]],
                     "test": mean, "test_runs": tabs,
                     "best_epoch": [r["best_epoch"] for r in row["runs"]],
                     "best_dev_mean_recall": [r["best_dev_mean_recall"] for r in row["runs"]],
                     "p_at_k": row["precision_at_k"]["mean"]["search"],
                     "train_cpu_s": [t["train_cpu_s"] for t in row["timing"]],
                     "train_captions_per_s": [t["train_captions_per_s"] for t in row["timing"]]})
    return rows


def markdown(rows, ks, system, epochs, key="batch_size"):
    column, title, note, milan_rows = SWEPT[key]
    head = [column] + [f"{n} R@{k}" for n in ("Search", "Annot.") for k in ks] + \
           ["P@1 (100 pairs)", "Best epoch", "Dev mean recall", "Train CPU s", "Train captions/s"]
    lines = [f"# {title} of `{system}` (test split; mean over seeds)", "", note.format(epochs=epochs), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r[key])] + [f"{r['test'][d][f'R@{k}']:.1f}" for d in ("search", "annotation") for k in ks]
        cells += [f"{r['p_at_k'].get('P@1', float('nan')):.2f}", ",".join(map(str, r["best_epoch"])),
                  f"{np.mean(r['best_dev_mean_recall']):.1f}", f"{np.mean(r['train_cpu_s']):.0f}",
                  f"{np.mean(r['train_captions_per_s']):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    milan = yaml.safe_load(PAPERS.read_text()).get("milan2021_ablation")
    if milan and milan_rows:
        lines += ["", f"{milan['cite']}, {milan['data']} — published, for reference only (other corpus):", ""]
        for name in milan_rows:
            v = milan["rows"].get(name, {})
            lines.append(f"- {name}: " + ", ".join(f"{d} {m} {x}" for d in ("search", "annotation")
                                                    for m, x in v.get(d, {}).items()))
    return "\n".join(lines) + "\n"


def write_sweep(metric_files, values, key, ks, system, epochs, json_out, md_out):
    rows = sweep_table(metric_files, values, ks, key)
    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps({"system": system, "key": key, "ks": list(ks), "rows": rows}, indent=1))
    with atomic_path(md_out) as tmp:
        tmp.write_text(markdown(rows, ks, system, epochs, key))
    return rows
