"""Test-split ranks of one system (every seed's trained net and the same net untrained, the random
projection) → results/coscos/{system}/ranks.json, and the paper's Tables 1 and 2 of every system
→ results/coscos/ranks.{json,md,html}."""
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from ..cache import read_json
from .data import load_split
from .ranks import LABELS, TASKS, summary, task_ranks
from .train import load_model
from ..runtime import atomic_path, torch_device

log = logging.getLogger(__name__)

SYSTEM_LABELS = {"speech": "aligner word times", "oracle": "ground-truth word times"}
TABLE2_TASKS = TASKS[1:]  # the paper's Table 2 has no Word Similarity row
PAPER = yaml.safe_load((Path(__file__).parents[1] / "recall" / "papers.yaml").read_text())["synnaeve2014"]


def embed(model, split, device, block=4096):
    with torch.no_grad():
        E_tok = torch.cat([model.embed_tokens(torch.as_tensor(split.tokens[i:i + block]).to(device))
                           for i in range(0, len(split.tokens), block)])
        E_frag = model.embed_images(torch.as_tensor(split.frags).to(device))
    return E_tok, E_frag


def evaluate_system(model_pts, tokens_tsv, fbank_h5, regions_h5, utterances_tsv, cfg, out_json, system):
    ks, block = tuple(cfg["eval"]["ks"]), cfg["eval"]["block"]
    device = torch_device()
    test = load_split(tokens_tsv, fbank_h5, regions_h5, utterances_tsv, "test", cfg["frames"])
    runs, t0 = [], time.time()
    for pt in model_pts:
        run = {}
        for name, which in (("model", "state"), ("random", "init")):
            model, ck = load_model(pt, which)
            model.to(device)
            r = task_ranks(*embed(model, test, device), test.tok_image, test.tok_word, test.frag_image,
                           len(test.image_ids), block)
            run[name] = {t: r[t].tolist() for t in TASKS}
        run.update(seed=ck["info"]["seed"], best_epoch=ck["info"]["best_epoch"],
                   epochs_run=ck["info"]["epochs_run"])
        runs.append(run)
        log.info("seed %s: %s", run["seed"], {t: summary(run["model"][t], ks) for t in TASKS})
    first = runs[0]["model"]
    out = {"system": system, "label": SYSTEM_LABELS.get(system, system), "sizes": test.sizes(),
           "queries": {t: int((np.asarray(first[t]) > 0).sum()) for t in TASKS},
           "queries_without_relevant_item": {t: int((np.asarray(first[t]) == 0).sum()) for t in TASKS},
           "runs": runs, "timing": {"ranking_s": time.time() - t0, "device": str(device)}}
    log.info("%s: %s; ranking %.1f s", system, out["sizes"], out["timing"]["ranking_s"])
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(out))
    return out


def _stats(runs, which, task, ks):
    """Mean and sd over seeds of each summary number."""
    per = [summary(r[which][task], ks) for r in runs]
    return {m: {"mean": float(np.mean([p[m] for p in per])),
                "sd": float(np.std([p[m] for p in per], ddof=1)) if len(per) > 1 else 0.0} for m in per[0]}


def assemble(system_files, ks):
    systems = []
    for p in system_files:
        s = read_json(p, ["runs"])
        s["tables"] = {w: {t: _stats(s["runs"], w, t, ks) for t in TASKS} for w in ("random", "model")}
        s["n_seeds"] = len(s["runs"])
        s.pop("runs")  # the per-query ranks stay in results/coscos/{system}/ranks.json
        systems.append(s)
    return {"ks": list(ks), "systems": systems, "paper": PAPER,
            "note": "The paper's numbers are on Pascal1K images with LUCID words (its corpus, 4096-d R-CNN "
                    "fragments); ours on the generated corpus: not comparable."}


def _cell(st, m, n_seeds, fmt="{:.1f}"):
    v = fmt.format(st[m]["mean"])
    return f"{v} ± {fmt.format(st[m]['sd'])}" if n_seeds > 1 else v


def frames(result):
    """(Table 1, Table 2) as DataFrames: one row per task × system, random projection beside model,
    then the published row."""
    ks, t1, t2 = result["ks"], [], []
    pub = result["paper"]
    for task in TASKS:
        for s in result["systems"]:
            rec1, rec2 = {"Task": LABELS[task], "Tokens from": s["label"]}, {"Task": LABELS[task], "Tokens from": s["label"]}
            for w, name in (("random", "Random"), ("model", "Model")):
                st = s["tables"][w][task]
                rec1[f"{name} median"] = _cell(st, "median_rank", s["n_seeds"])
                rec1[f"{name} mean"] = _cell(st, "mean_rank", s["n_seeds"], "{:.2f}")
                for k in ks:
                    rec2[f"{name} R@{k}"] = _cell(st, f"R@{k}", s["n_seeds"])
            rec1["Queries"] = rec2["Queries"] = s["queries"][task]
            t1.append(rec1)
            if task in TABLE2_TASKS:
                t2.append(rec2)
        p1 = pub["table1"][LABELS[task]]
        t1.append({"Task": LABELS[task], "Tokens from": "published (Pascal1K + LUCID)",
                   "Random median": p1["random"][0], "Random mean": p1["random"][1],
                   "Model median": p1["model"][0], "Model mean": p1["model"][1], "Queries": ""})
        if task in TABLE2_TASKS:
            p2 = pub["table2"][LABELS[task]]
            rec = {"Task": LABELS[task], "Tokens from": "published (Pascal1K + LUCID)"}
            for w, name in (("random", "Random"), ("model", "Model")):
                rec.update({f"{name} R@{k}": p2[w][j] for j, k in enumerate(pub["ks"]) if k in ks})
            t2.append({**rec, "Queries": ""})
    return pd.DataFrame(t1), pd.DataFrame(t2)


def _md(df):
    return ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)] + \
        ["| " + " | ".join(str(v) for v in r) + " |" for _, r in df.iterrows()]


def markdown(result):
    t1, t2 = frames(result)
    sizes = "; ".join(f"{s['label']}: {s['sizes']['tokens']} tokens of {s['sizes']['types']} types, "
                      f"{s['sizes']['fragments']} fragments of {s['sizes']['images']} images, "
                      f"{s['n_seeds']} seed(s)" for s in result["systems"])
    lines = ["# Cross-situational word learning (Synnaeve et al. 2014) on the test split", "",
             f"Ranked: {sizes}. Every fragment is a query of its own (as the published evaluation code); "
             "ties count against the system; a query with no relevant item is left out (Queries = those "
             "ranked). Random = the same net untrained (random projection). With several seeds: mean ± sd.",
             "", "## Table 1: median and mean rank (lower is better)", ""] + _md(t1) + \
            ["", "## Table 2: recall@K in % (higher is better)", ""] + _md(t2) + \
            ["", f"Published: {result['paper']['cite']}, {result['paper']['data']}. {result['note']}"]
    return "\n".join(lines) + "\n"


def write_tables(system_files, ks, json_out, md_out, html_out):
    result = assemble(system_files, tuple(ks))
    md = markdown(result)
    t1, t2 = frames(result)
    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_path(md_out) as tmp:
        tmp.write_text(md)
    with atomic_path(html_out) as tmp:
        tmp.write_text("<html><body><h3>Table 1: median and mean rank</h3>" + t1.to_html(index=False)
                       + "<h3>Table 2: recall@K (%)</h3>" + t2.to_html(index=False)
                       + f"<p>{result['paper']['cite']}: {result['note']}</p></body></html>")
    log.info("\n%s", md)
    return result
