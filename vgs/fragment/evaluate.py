"""Test-split retrieval (paper sec. 4, Table 1): per-system metrics, random baseline, merged table."""
import json
import logging
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from vgs.fragment import metrics
from vgs.fragment.data import load_split
from vgs.fragment.grounding import grounding_accuracy
from vgs.fragment.model import chunked_scores
from vgs.fragment.train import config_hash, load_model
from vgs.runtime import atomic_path, torch_device

log = logging.getLogger(__name__)

# Flickr8k Table 1 of Harwath & Glass (2015), recall@10 in %, for reference beside ours.
PAPER_TABLE1 = {"Socher et al. [21]": (28.6, 29.0), "Karpathy [8]": (42.5, 44.0),
                "Text + word vec": (49.0, 56.7), "Spectrogram CNN": (17.9, 24.3)}
LABELS = {"speech": "Spectrogram CNN", "oracle": "Spectrogram CNN, oracle word times",
          "text": "Text + word vec", "random": "Random ranking"}


def evaluate_system(model_pt, regions_h5, words_h5, utterances_tsv, cfg, scores_out, metrics_out,
                    boxes_tsv=None, system="?", device=None):
    ks = tuple(cfg["ks"])
    model, ck = load_model(model_pt)
    device = torch_device() if device is None else device
    model.to(device)  # scores come back to the CPU (chunked_scores, grounding)
    test = load_split(regions_h5, words_h5, utterances_tsv, "test")
    t0 = time.time()
    S = chunked_scores(model, test.feats, test.words, test.seg, len(test.cap_ids), cfg["eval_mem_mb"],
                       progress=lambda it: tqdm(it, desc="scoring", mininterval=5))
    t_score = time.time() - t0
    search, annot = metrics.ranks(S, test.cap_image)
    table = metrics.recall_table(search, annot, ks)
    t_eval = time.time() - t0
    out = {"system": system, "label": LABELS.get(system, system), "test": table,
           "sizes": test.sizes(), "captions_per_image": np.bincount(test.cap_image).tolist(),
           "train_sizes": ck["info"].get("train_sizes"), "dev_sizes": ck["info"].get("dev_sizes"),
           "best_epoch": ck["info"]["best_epoch"],
           "best_dev_mean_recall": ck["info"]["best_dev_mean_recall"],
           "train_config_hash": config_hash(ck["config"]),
           "timing": {"scoring_s": t_score, "evaluation_s": t_eval, "device": str(device),
                      "captions_per_s": len(test.cap_ids) / max(t_eval, 1e-9)},
           "random_simulated": metrics.random_simulated(test.cap_image, ks, cfg["random_trials"], cfg["seed"])}
    if boxes_tsv:
        gt = pd.read_csv(boxes_tsv, sep="\t", dtype={"image_id": str, "category": str})
        missing = {"image_id", "category", "x0", "y0", "x1", "y1"} - set(gt.columns)
        if missing:
            raise ValueError(f"{boxes_tsv}: missing columns {sorted(missing)}")
        out["grounding"] = grounding_accuracy(model, test, gt, cfg["grounding_iou"])
    log.info("%s test: search %s | annotation %s | %.2f s for %d x %d scores (%.0f captions/s)",
             system, table["search"], table["annotation"], t_eval, S.shape[0], S.shape[1],
             out["timing"]["captions_per_s"])
    if "grounding" in out:
        log.info("%s grounding: %s", system, out["grounding"])
    with atomic_path(scores_out) as tmp:
        with open(tmp, "wb") as fh:  # np.save would append .npy to the temp name
            np.save(fh, S.astype(np.float32))
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return out


def merge_rows(metric_files, fragment_cfg, json_out, md_out, html_out=None):
    """All rows (+ random ranking, analytic) into results/flickr8k_recall.{json,md}."""
    rows = [json.loads(open(p).read()) for p in metric_files]
    ks = tuple(fragment_cfg["eval"]["ks"])
    sizes = rows[0]["sizes"] if rows else {}
    if rows:
        random = metrics.random_analytic(sizes["images"], rows[0]["captions_per_image"], ks)
        rows.append({"system": "random", "label": LABELS["random"], "test": random,
                     "note": "analytic expectation; seeded simulations in each row's random_simulated",
                     "sizes": sizes})
    result = {"config_hash": config_hash(fragment_cfg), "ks": list(ks), "rows": rows,
              "paper_table1_R@10": {k: {"search": v[0], "annotation": v[1]} for k, v in PAPER_TABLE1.items()}}
    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    md = markdown_table(rows, ks)
    with atomic_path(md_out) as tmp:
        tmp.write_text(md)
    if html_out:
        with atomic_path(html_out) as tmp:
            tmp.write_text(_html(md_table_frame(rows, ks), result))
    log.info("\n%s", md)
    return result


def md_table_frame(rows, ks):
    recs = []
    for r in rows:
        rec = {"Model": r["label"]}
        for d, name in (("search", "Search"), ("annotation", "Annotation")):
            for k in ks:
                rec[f"{name} R@{k}"] = r["test"][d][f"R@{k}"]
            rec[f"{name} med r"] = r["test"][d]["median_rank"]
        g = r.get("grounding") or {}
        rec["Grounding acc. (random)"] = (f"{g['accuracy']:.1f} ({g['random_baseline']:.1f})"
                                          if g.get("accuracy") is not None else "")
        recs.append(rec)
    return pd.DataFrame(recs)


def markdown_table(rows, ks):
    df = md_table_frame(rows, ks)
    s = rows[0]["sizes"] if rows else {}
    lines = [f"# Image search and annotation on the test split ({s.get('images', '?')} images, "
             f"{s.get('captions', '?')} captions)", "",
             "Recall@K in %, median rank (lower is better); ties count against the system.", "",
             "| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r) + " |")
    lines += ["", "Harwath & Glass (2015) Table 1, Flickr8k test (1000 images, 5000 captions), for reference:", "",
              "| Model | Search R@10 | Annotation R@10 |", "|---|---|---|"]
    lines += [f"| {k} | {a} | {b} |" for k, (a, b) in PAPER_TABLE1.items()]
    return "\n".join(lines) + "\n"


def _html(df, result):
    return ("<html><body><h3>Image search and annotation, test split</h3>"
            + df.to_html(index=False, float_format=lambda v: f"{v:.1f}")
            + "<h4>Harwath &amp; Glass (2015) Table 1 (Flickr8k, R@10)</h4>"
            + pd.DataFrame([(k, *v) for k, v in PAPER_TABLE1.items()],
                           columns=["Model", "Search R@10", "Annotation R@10"]).to_html(index=False)
            + f"<p>config hash {result['config_hash']}</p></body></html>")
