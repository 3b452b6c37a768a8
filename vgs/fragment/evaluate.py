"""Test-split retrieval (paper sec. 4, Table 1): one system's ranks, recall and grounding, written as a
row of the recall table (contract in vgs/recall/table.py)."""
import json
import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vgs import retrieval
from vgs.cache import read_tsv
from vgs.fragment.data import load_split
from vgs.fragment.grounding import grounding_accuracy
from vgs.fragment.model import chunked_scores
from vgs.fragment.train import config_hash, load_model
from vgs.runtime import atomic_path, torch_device

log = logging.getLogger(__name__)

LABELS = {"speech": "Spectrogram CNN (2015)", "oracle": "Spectrogram CNN, oracle word times (2015)",
          "text": "Text + word vec (2015)"}
# the row of Harwath & Glass (2015) Table 1 (vgs/recall/papers.yaml) each system reproduces
PAPER_ROWS = {"speech": "Spectrogram CNN", "oracle": "Spectrogram CNN", "text": "Text + word vec"}


def evaluate_system(model_pts, regions_h5, words_h5, utterances_tsv, cfg, scores_out, metrics_out,
                    boxes_tsv=None, system="?", device=None):
    """Test ranks of every seed's model (`model_pts`: one path or a list, one per seed) as one recall
    row; scores of all seeds in `scores_out` (.npz, one (captions, images) array per seed)."""
    ks = tuple(cfg["ks"])
    model_pts = [model_pts] if isinstance(model_pts, (str, Path)) else list(model_pts)
    device = torch_device() if device is None else device
    test = load_split(regions_h5, words_h5, utterances_tsv, "test")
    gt = None
    if boxes_tsv:
        gt = read_tsv(boxes_tsv, ["image_id", "category", "x0", "y0", "x1", "y1"])
    runs, scores, t0 = [], {}, time.time()
    for pt in model_pts:
        model, ck = load_model(pt)
        model.to(device)  # scores come back to the CPU (chunked_scores, grounding)
        seed = ck["config"].get("seed")
        S = chunked_scores(model, test.feats, test.words, test.seg, len(test.cap_ids), cfg["eval_mem_mb"],
                           progress=lambda it: tqdm(it, desc=f"scoring seed {seed}", mininterval=5))
        search, annot = retrieval.ranks(S, test.cap_image)
        run = {"seed": seed, "ranks": {"search": search.tolist(), "annotation": annot.tolist()},
               "test": retrieval.recall_table(search, annot, ks), "best_epoch": ck["info"]["best_epoch"],
               "best_dev_mean_recall": ck["info"]["best_dev_mean_recall"],
               "train_config_hash": config_hash(ck["config"])}
        if gt is not None:
            run["grounding"] = grounding_accuracy(model, test, gt, cfg["grounding_iou"])
        log.info("%s seed %s test: search %s | annotation %s", system, seed, run["test"]["search"],
                 run["test"]["annotation"])
        runs.append(run)
        scores[f"seed{seed}"] = S.astype(np.float32)
    t_eval = time.time() - t0
    out = {"system": system, "stage": "fragment", "label": LABELS.get(system, system),
           "paper": {"seed": "harwath2015", "row": PAPER_ROWS[system]} if system in PAPER_ROWS else None,
           "runs": runs, "sizes": test.sizes(), "captions_per_image": np.bincount(test.cap_image).tolist(),
           "train_sizes": ck["info"].get("train_sizes"), "dev_sizes": ck["info"].get("dev_sizes"),
           "timing": {"evaluation_s": t_eval, "device": str(device),
                      "captions_per_s": len(runs) * len(test.cap_ids) / max(t_eval, 1e-9)},
           "random_simulated": retrieval.random_simulated(test.cap_image, ks, cfg["random_trials"], cfg["seed"])}
    acc = [r["grounding"]["accuracy"] for r in runs if r.get("grounding", {}).get("accuracy") is not None]
    if acc:
        rand = np.mean([r["grounding"]["random_baseline"] for r in runs])
        out["grounding"] = {"accuracy": float(np.mean(acc)), "accuracy_sd": float(np.std(acc, ddof=1)) if len(acc) > 1
                            else 0.0, "random_baseline": float(rand), "seeds": len(acc)}
        out["columns"] = {"Grounding acc. (random)": f"{np.mean(acc):.1f} ({rand:.1f})"}
        log.info("%s grounding over %d seeds: %s", system, len(acc), out["grounding"])
    with atomic_path(scores_out) as tmp:
        with open(tmp, "wb") as fh:  # np.savez would append .npz to the temp name
            np.savez(fh, **scores)
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return out
