"""Test-split retrieval of one caption system (all its seeds): a row of the recall table (contract in
vgs/recall/table.py), with the matchmap paper's P@1/5/10 on 100 image/caption pairs as extra cells.

P@K protocol (vgg-resnet-matchmap-tts-flickr8k sec. 2.5 and 3): 100 test images drawn at random
(numpy seed `eval.seed`; all of them when the split has fewer), one of each image's captions drawn
with the same generator; the 100 captions rank the 100 images (speech -> image, "find relevant
images given a spoken description"); P@K = share of captions whose image is among the top K (the
paper's (R) rows and its P@10 > 0.1 show it is a hit rate, not precision over K).  The same pairs
for every seed and system; chance is K/100."""
import json
import logging
import time

import numpy as np

from .. import retrieval
from ..runtime import atomic_path, torch_device
from .data import load_split
from .train import load_model, score_split

log = logging.getLogger(__name__)


def draw_pairs(cap_image, n_pairs, seed):
    """(images, captions): n_pairs images drawn without replacement, one caption of each."""
    rng = np.random.default_rng(seed)
    imgs = np.sort(rng.choice(np.unique(cap_image), size=min(n_pairs, len(np.unique(cap_image))), replace=False))
    caps = np.array([rng.choice(np.flatnonzero(cap_image == k)) for k in imgs])
    return imgs, caps


def precision_at(S, imgs, caps, ks):
    """Hit rates of the pairs' sub-matrix (images x captions, pair j = (imgs[j], caps[j]))."""
    sub = S[np.ix_(imgs, caps)]
    search, annotation = retrieval.ranks(sub, np.arange(len(imgs)))
    return {"search": {f"P@{k}": float((search <= k).mean()) for k in ks},
            "annotation": {f"P@{k}": float((annotation <= k).mean()) for k in ks}, "pairs": int(len(imgs))}


def label_of(system, cfg, mode):
    what = f"{cfg['audio']} + {cfg['image']}, {cfg['similarity']}, {cfg['loss']}"
    if mode == "untrained":
        return f"{system} (R): untrained {cfg['audio']}, image tower trained"
    if mode.startswith("bs"):
        return f"{system}, batch size {mode[2:]} ({what})"
    if mode == "finetuned":
        return f"{system}, pretrained on a second corpus, fine-tuned ({what})"
    if mode.startswith("len"):
        return f"{system}, captions cropped and padded to {mode[3:]} s ({what})"
    return f"{system} ({what})"


def evaluate_system(model_pts, feats_h5, image_h5, utterances_tsv, ecfg, metrics_out, system, mode,
                    paper=None, device=None):
    """One row from the models of every seed (model_pts: one file per seed)."""
    device = torch_device() if device is None else device
    runs, pk, timing, train = [], [], [], []
    test = None
    for path in model_pts:
        model, ck = load_model(path)
        cfg = ck["config"]
        if test is None:
            test = load_split(feats_h5, image_h5, cfg["image"], utterances_tsv, "test", cfg["max_frames"], cfg["grid"],
                              cfg.get("fixed_seconds"))
            imgs, caps = draw_pairs(test.cap_image, ecfg["pairs"], ecfg["seed"])
        model.to(device)
        t0 = time.perf_counter()
        S, t = score_split(model, test, ecfg["mem_mb"])
        search, annot = retrieval.ranks(S, test.cap_image)
        runs.append({"seed": cfg["seed"], "ranks": {"search": search.tolist(), "annotation": annot.tolist()},
                     "best_epoch": ck["info"]["best_epoch"], "best_dev_mean_recall": ck["info"]["best_dev_mean_recall"]})
        pk.append(precision_at(S, imgs, caps, ecfg["ks"]))
        info = ck["info"]
        timing.append({**t, "evaluation_s": time.perf_counter() - t0,  # wall clock: not reproducible
                       "infer_captions_per_s": len(test.cap_ids) / max(t["embed_captions_s"], 1e-9),
                       "infer_captions_per_cpu_s": len(test.cap_ids) / max(t["embed_captions_cpu_s"], 1e-9),
                       "train_wall_s": info.get("wall_s"), "train_cpu_s": info.get("cpu_s"),
                       "epochs_cpu_s": info.get("epochs_cpu_s"),
                       "train_captions_per_s": info.get("train_captions_per_s"),
                       "train_captions_per_cpu_s": info.get("train_captions_per_cpu_s")})
        train.append({"params": info.get("params"), "device": info.get("device"),
                      "train_sizes": info.get("train_sizes"), "dev_sizes": info.get("dev_sizes")})
        tab = retrieval.recall_table(search, annot, ecfg["ks"])
        log.info("%s/%s seed %s test: search %s | annotation %s | P@K %s", system, mode, cfg["seed"],
                 tab["search"], tab["annotation"], pk[-1]["search"])
    mean_pk = {d: {m: float(np.mean([p[d][m] for p in pk])) for m in pk[0][d]} for d in ("search", "annotation")}
    sd_pk = {d: {m: float(np.std([p[d][m] for p in pk], ddof=1)) if len(pk) > 1 else 0.0 for m in pk[0][d]}
             for d in ("search", "annotation")}
    cell = (lambda d, m: f"{mean_pk[d][m]:.2f} ± {sd_pk[d][m]:.2f}") if len(pk) > 1 else (lambda d, m: f"{mean_pk[d][m]:.2f}")
    paper_row = None
    if paper:
        paper_row = paper.get("untrained_row") if mode == "untrained" else paper.get("row")
    out = {"system": f"caption:{system}" + ("" if mode == "trained" else f":{mode}"), "stage": "caption",
           "label": label_of(system, cfg, mode),
           "paper": {"seed": paper["seed"], "row": paper_row} if paper_row else None,
           "runs": runs, "sizes": {"images": int(len(test.image_ids)), "captions": int(len(test.cap_ids))},
           "captions_per_image": np.bincount(test.cap_image).tolist(),
           "columns": {f"P@{k} ({pk[0]['pairs']} pairs)": cell("search", f"P@{k}") for k in ecfg["ks"]},
           "precision_at_k": {"protocol": f"{pk[0]['pairs']} test images, one caption each, numpy seed {ecfg['seed']}; "
                                          "search: captions rank images (the paper's direction)",
                              "mean": mean_pk, "sd": sd_pk, "runs": pk, "chance": {f"P@{k}": min(k, pk[0]["pairs"]) / pk[0]["pairs"] for k in ecfg["ks"]}},
           "mode": mode, "config": {k: v for k, v in cfg.items() if k != "seed"},
           "test_report": test.sizes(), "timing": timing, "training": train}
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return out
