"""Grounding accuracy on the synthetic corpus: does a caption word that names an object pick,
as its highest-scoring region, one overlapping a ground-truth box of that object (IoU >= thr)?"""
import numpy as np
import pandas as pd
import torch

from ..truth import box_iou as iou, name_forms  # noqa: F401 (iou: this module's name for it)


def region_word_scores(model, data, chunk=2048):
    """(T, R) score y_i . x_t of every word against every region of its own caption's image."""
    model.eval()
    dev = model.image_mean.device
    out = np.empty((len(data.seg), data.feats.shape[1]), np.float32)
    img = data.cap_image[data.seg]
    with torch.no_grad():
        for a in range(0, len(img), chunk):
            y = model.embed_images(torch.as_tensor(data.feats[img[a:a + chunk]]).to(dev))
            x = model.embed_words(torch.as_tensor(data.words[a:a + chunk]).to(dev))
            out[a:a + chunk] = torch.einsum("trh,th->tr", y, x).cpu().numpy()
    return out


def grounding_accuracy(model, data, gt, thr=0.5):
    """gt: DataFrame image_id, category, x0, y0, x1, y1. Random baseline = expected accuracy of a
    uniformly drawn region; upper bound = share of words whose image has any qualifying region."""
    form_to_cat = {f: c for c in gt["category"].astype(str).unique() for f in name_forms(c)}
    cat = np.array([form_to_cat.get(w) for w in data.word_text], dtype=object)
    naming = np.flatnonzero(cat != None)  # noqa: E711 (object array)
    words = pd.DataFrame({"t": naming, "image_id": data.image_ids[data.cap_image[data.seg[naming]]],
                          "category": cat[naming]})
    pairs = words.merge(gt.astype({"image_id": str, "category": str}), on=["image_id", "category"])
    n_unmatched = int(len(words) - pairs["t"].nunique())  # word names an object absent from the image
    if pairs.empty:
        return {"words": 0, "unmatched_words": n_unmatched, "accuracy": None, "random_baseline": None}
    t = pairs["t"].to_numpy()
    img = data.cap_image[data.seg[t]]
    ov = iou(data.boxes[img], pairs[["x0", "y0", "x1", "y1"]].to_numpy(np.float32)[:, None, :])  # (P, R)
    good = pd.DataFrame(ov >= thr).groupby(t).max()  # (words, R): region hits any box of the object
    tw = good.index.to_numpy()
    good = good.to_numpy()
    real = data.region_mask()[data.cap_image[data.seg[tw]]]  # padding rows copy row 0
    scores = np.where(real, region_word_scores(model, _subset_words(data, tw)), -np.inf)
    hit = good[np.arange(len(tw)), scores.argmax(1)]
    return {"words": int(len(tw)), "unmatched_words": n_unmatched, "iou_threshold": thr,
            "accuracy": float(100 * hit.mean()),
            "random_baseline": float(100 * ((good & real).sum(1) / real.sum(1)).mean()),
            "upper_bound": float(100 * (good & real).any(1).mean())}


def _subset_words(data, t):
    from dataclasses import replace
    return replace(data, words=data.words[t], seg=data.seg[t], word_text=data.word_text[t])
