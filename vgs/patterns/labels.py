"""Labels of what was grounded (2017 paper sec. 5), from word segments and ground-truth boxes.

A segment's label is the string of the words it overlaps by >= 30% of their duration (in spoken
order; "" = silence, shown as "-").  A box's label is the ground-truth object it overlaps at
IoU >= 0.5 (the best one), else "" (background)."""
from collections import Counter

import numpy as np
import pandas as pd

from ..truth import box_iou


def segment_labels(utt_ids, spans, words, min_overlap=0.3, frame_s=0.01):
    """For groundings (utt_ids (G,), spans (G, 2) in frames): (labels (G,) object array of str,
    first word index (G,) int, -1 when none; aligned (G,) bool: False where the word table has no
    words for the utterance (an aligner failure) - such a label is None)."""
    g = pd.DataFrame({"g": np.arange(len(utt_ids)), "utt_id": np.asarray(utt_ids, dtype=object),
                      "s": np.asarray(spans)[:, 0] * frame_s, "e": np.asarray(spans)[:, 1] * frame_s})
    m = g.merge(words[["utt_id", "index", "word", "start", "end"]], on="utt_id", how="inner")
    dur = np.maximum(m["end"] - m["start"], 1e-9)
    ov = np.clip(np.minimum(m["e"], m["end"]) - np.maximum(m["s"], m["start"]), 0, None) / dur
    m = m[ov.to_numpy() >= min_overlap - 1e-9].sort_values(["g", "index"], kind="stable")
    agg = m.groupby("g").agg(label=("word", " ".join), first=("index", "min"))
    labels = np.full(len(g), "", dtype=object)
    first = np.full(len(g), -1, np.int64)
    labels[agg.index.to_numpy()] = agg["label"].to_numpy()
    first[agg.index.to_numpy()] = agg["first"].to_numpy()
    aligned = g["utt_id"].isin(set(words["utt_id"])).to_numpy()
    labels[~aligned] = None
    return labels, first, aligned


def ngram_counts(words, utt_ids, max_n):
    """Occurrences of every word n-gram (n <= max_n, as a space-joined string) in the transcripts
    (word tables) of `utt_ids`: the denominators of coverage."""
    w = words[words["utt_id"].isin(set(utt_ids))].sort_values(["utt_id", "index"], kind="stable")
    counts = Counter()
    for seq in w.groupby("utt_id", sort=False)["word"].agg(list):  # one list per caption
        for n in range(1, max_n + 1):
            counts.update(" ".join(seq[i:i + n]) for i in range(len(seq) - n + 1))
    return counts


def box_labels(image_ids, boxes, widths, heights, gt, iou=0.5):
    """GT category of each grounded box (fractions (G, 4) of images of the given sizes): the object
    of the same image with the highest IoU >= iou, else "".  gt: DataFrame image_id, category,
    x0, y0, x1, y1 (pixels)."""
    px = np.asarray(boxes, np.float64) * np.stack([widths, heights, widths, heights], 1)
    g = pd.DataFrame({"g": np.arange(len(px)), "image_id": np.asarray(image_ids, dtype=object)})
    m = g.merge(gt[["image_id", "category", "x0", "y0", "x1", "y1"]].astype({"image_id": object}),
                on="image_id", how="inner")
    out = np.full(len(px), "", dtype=object)
    if m.empty:
        return out
    m["iou"] = box_iou(px[m["g"].to_numpy()], m[["x0", "y0", "x1", "y1"]].to_numpy(np.float64))
    m = m[m["iou"] >= iou].sort_values(["g", "iou"], ascending=[True, False], kind="stable")
    best = m.drop_duplicates("g")
    out[best["g"].to_numpy()] = best["category"].astype(str).to_numpy()
    return out
