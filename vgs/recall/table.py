"""Assemble results/flickr8k_recall.{json,md,html} from every system's metrics file.

The contract: each stage writes one JSON per system (e.g. results/fragment/speech/metrics.json):

  system     row id, unique over all stages          label   the row's name in the table
  stage      the stage that made it                  paper   {"seed": key of papers.yaml, "row": name} or null
  runs       [{"seed": s, "ranks": {"search": [...], "annotation": [...]}}, ...]: 1-based test ranks of
             every query (search: one per caption, annotation: one per image), one entry per trained seed
  sizes      {"images": K, "captions": C}        captions_per_image   [..] (the random row)
  columns    optional {header: cell}: stage-specific cells (grounding, P@K, WER), numbers or text
Anything else in the file is kept in the JSON.  Recall@K, median rank, mean ± sd over seeds and the
bootstrap interval of R@10 are computed here, the same way for every row."""
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vgs import retrieval
from vgs.cache import read_json
from vgs.runtime import atomic_path

log = logging.getLogger(__name__)

PAPERS = yaml.safe_load((Path(__file__).with_name("papers.yaml")).read_text())
DIRECTIONS = (("search", "Search"), ("annotation", "Annot."))


def run_tables(row, ks):
    """Recall table of each run (seed) of a row."""
    return [retrieval.recall_table(r["ranks"]["search"], r["ranks"]["annotation"], ks) for r in row["runs"]]


def summarise(row, ks, bootstrap, seed):
    """Mean (and sd over seeds) of every metric, and a bootstrap interval for R@10 over test queries:
    queries are resampled (the same draw for every seed) and the mean R@K over seeds recomputed."""
    tabs = run_tables(row, ks)
    mean = {d: {m: float(np.mean([t[d][m] for t in tabs])) for m in tabs[0][d]} for d, _ in DIRECTIONS}
    sd = {d: {m: float(np.std([t[d][m] for t in tabs], ddof=1)) if len(tabs) > 1 else 0.0
              for m in tabs[0][d]} for d, _ in DIRECTIONS}
    k = max(ks)
    rng = np.random.default_rng(seed)
    ci = {}
    for d, _ in DIRECTIONS:
        R = np.array([r["ranks"][d] for r in row["runs"]])  # (seeds, queries)
        idx = rng.integers(0, R.shape[1], size=(bootstrap, R.shape[1]))
        boot = 100.0 * (R[:, idx] <= k).mean(axis=(0, 2))
        ci[d] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
    return mean, sd, {f"R@{k}": ci}


def assemble(metric_files, cfg):
    """Rows in the order given, then the analytic random row."""
    ks = tuple(cfg["ks"])
    rows = []
    for p in metric_files:
        row = read_json(p, ["system", "label", "runs", "sizes", "captions_per_image"])
        row["test"], row["test_sd"], row["bootstrap_ci95"] = summarise(row, ks, cfg["bootstrap"], cfg["seed"])
        row["n_runs"] = len(row["runs"])
        row["run_tables"] = run_tables(row, ks)
        rows.append(row)
    if rows:
        s = rows[0]
        rows.append({"system": "random", "label": "Random ranking", "stage": None, "paper": None, "n_runs": 0,
                     "test": retrieval.random_analytic(s["sizes"]["images"], s["captions_per_image"], ks),
                     "sizes": s["sizes"], "note": "analytic expectation of a uniformly random ranking"})
    seeds = sorted({r["paper"]["seed"] for r in rows if r.get("paper")})
    return {"ks": list(ks), "rows": rows, "papers": {k: PAPERS[k] for k in seeds},
            "note": "Numbers on the generated corpus are not comparable with the papers' (other corpora)."}


def _cell(row, d, m):
    v = row["test"][d][m]
    sd = row.get("test_sd", {}).get(d, {}).get(m)
    return f"{v:.1f} ± {sd:.1f}" if row.get("n_runs", 0) > 1 else f"{v:.1f}"


def frame(result):
    ks = result["ks"]
    extra = []
    for r in result["rows"]:
        extra += [c for c in r.get("columns", {}) if c not in extra]
    recs = []
    for r in result["rows"]:
        rec = {"Model": r["label"]}
        for d, name in DIRECTIONS:
            for k in ks:
                rec[f"{name} R@{k}"] = _cell(r, d, f"R@{k}")
            rec[f"{name} med r"] = _cell(r, d, "median_rank")
            ci = r.get("bootstrap_ci95", {}).get(f"R@{max(ks)}", {}).get(d)
            rec[f"{name} R@{max(ks)} 95% CI"] = f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else ""
        rec["Seeds"] = r.get("n_runs") or ""
        rec["Test img × cap"] = f"{r['sizes']['images']} × {r['sizes']['captions']}"
        for c in extra:
            v = r.get("columns", {}).get(c, "")
            rec[c] = f"{v:.1f}" if isinstance(v, float) else v
        rec["Published (paper, its corpus)"] = _published(r, result)
        recs.append(rec)
    return pd.DataFrame(recs)


def _published(row, result):
    p = row.get("paper")
    if not p:
        return ""
    ref = result["papers"][p["seed"]]["rows"].get(p["row"], {})
    cells = [f"{name} {m} {v}" for d, name in DIRECTIONS for m, v in ref.get(d, {}).items()]
    return f"{', '.join(cells)} ({result['papers'][p['seed']]['cite']})"


def markdown(result):
    df = frame(result)
    s = result["rows"][0]["sizes"] if result["rows"] else {}
    lines = [f"# Image search and annotation on the test split ({s.get('images', '?')} images, "
             f"{s.get('captions', '?')} captions)", "",
             "Recall@K in %, median rank (lower is better); ties count against the system. With several "
             "seeds: mean ± sd over seeds; the 95% interval is a bootstrap over test queries.", "",
             "| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for _, r in df.iterrows()]
    for key, paper in result["papers"].items():
        cols = [(d, name, m) for d, name in DIRECTIONS  # metrics in the order the paper gives them
                for m in dict.fromkeys(m for v in paper["rows"].values() for m in v.get(d, {}))]
        lines += ["", f"{paper['cite']}, {paper['data']} — published, for reference only (other corpus):", "",
                  "| Model | " + " | ".join(f"{name} {m}" for _, name, m in cols) + " |", "|---|" + "---|" * len(cols)]
        for row, v in paper["rows"].items():
            lines.append(f"| {row} | " + " | ".join(str(v.get(d, {}).get(m, "")) for d, _, m in cols) + " |")
    lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def write(metric_files, cfg, json_out, md_out, html_out):
    result = assemble(metric_files, cfg)
    md = markdown(result)
    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_path(md_out) as tmp:
        tmp.write_text(md)
    with atomic_path(html_out) as tmp:
        tmp.write_text("<html><body><h3>Image search and annotation, test split</h3>"
                       + frame(result).to_html(index=False) + f"<p>{result['note']}</p></body></html>")
    log.info("\n%s", md)
    return result
