"""Test-split retrieval (paper sec. 4, Table 1): one system's ranks, recall and grounding, written as a
row of the recall table (contract in vgs/recall/table.py)."""
import json
import logging
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from vgs import retrieval
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
    search, annot = retrieval.ranks(S, test.cap_image)
    table = retrieval.recall_table(search, annot, ks)
    t_eval = time.time() - t0
    out = {"system": system, "stage": "fragment", "label": LABELS.get(system, system),
           "paper": {"seed": "harwath2015", "row": PAPER_ROWS[system]} if system in PAPER_ROWS else None,
           "runs": [{"seed": ck["config"].get("seed"), "ranks": {"search": search.tolist(),
                                                                "annotation": annot.tolist()}}],
           "test": table,
           "sizes": test.sizes(), "captions_per_image": np.bincount(test.cap_image).tolist(),
           "train_sizes": ck["info"].get("train_sizes"), "dev_sizes": ck["info"].get("dev_sizes"),
           "best_epoch": ck["info"]["best_epoch"],
           "best_dev_mean_recall": ck["info"]["best_dev_mean_recall"],
           "train_config_hash": config_hash(ck["config"]),
           "timing": {"scoring_s": t_score, "evaluation_s": t_eval, "device": str(device),
                      "captions_per_s": len(test.cap_ids) / max(t_eval, 1e-9)},
           "random_simulated": retrieval.random_simulated(test.cap_image, ks, cfg["random_trials"], cfg["seed"])}
    if boxes_tsv:
        gt = pd.read_csv(boxes_tsv, sep="\t", dtype={"image_id": str, "category": str})
        missing = {"image_id", "category", "x0", "y0", "x1", "y1"} - set(gt.columns)
        if missing:
            raise ValueError(f"{boxes_tsv}: missing columns {sorted(missing)}")
        out["grounding"] = g = grounding_accuracy(model, test, gt, cfg["grounding_iou"])
        if g.get("accuracy") is not None:
            out["columns"] = {"Grounding acc. (random)": f"{g['accuracy']:.1f} ({g['random_baseline']:.1f})"}
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
