"""How far the fast embeddings stand from the paper's exact ones, on a seeded sample of captions
(rule patterns_compare): segments by pooling one pass of the audio net (`pool`) vs the net on each
segment alone (`exact`), and boxes by RoI pooling of the cached conv map (`roi`) vs cropping,
resizing and running the CNN on each box (`crop`).  For each: cosine of the two embeddings of the
same proposal, agreement of what the grounding would pick, and the time per proposal."""
import json
import time

import numpy as np
from scipy.stats import spearmanr

from ..runtime import atomic_path, open_h5, strings
from ..truth import box_iou
from . import proposals as prop
from .grounding import read_items, read_vad, select
from .towers import CropEncoder, Towers
from .vad import silence_fraction


def _cos(a, b):
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(1)


def _stats(x):
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return {"mean": float(x.mean()), "p5": float(np.percentile(x, 5)), "median": float(np.median(x)),
            "n": int(len(x))} if len(x) else None


def run_compare(towers_path, convmap_h5, fbank_h5, vad_h5, utterances_tsv, images_tsv, onnx_path, params,
                out_json, out_md, threads=1):
    cp, bp, sp, gp = params["compare"], params["boxes"], params["segments"], params["grounding"]
    items = read_items(utterances_tsv, images_tsv, params["split"])
    rng = np.random.default_rng(cp["seed"])
    vad, speech = read_vad(vad_h5)
    towers, crop = Towers(towers_path), CropEncoder(onnx_path, threads)
    with open_h5(fbank_h5) as fb, open_h5(convmap_h5) as cm:
        row = {i: r for r, i in enumerate(strings(cm["image_ids"][:]))}
        ok = [i for i in range(len(items)) if items.at[i, "utt_id"] in fb["feats"] and items.at[i, "utt_id"] in vad
              and items.at[i, "image_id"] in row]
        sample = np.sort(rng.choice(ok, min(cp["captions"], len(ok)), replace=False))
        feats = [np.asarray(fb["feats"][items.at[i, "utt_id"]], np.float32) for i in sample]
        maps = {items.at[i, "image_id"]: cm["convmap"][row[items.at[i, "image_id"]]] for i in sample}
    spans = []
    for i, f in zip(sample, feats):
        s = prop.segments(len(f), sp["step"], sp["min_frames"], sp["max_frames"])
        off, T = vad[items.at[i, "utt_id"]]
        spans.append(s[silence_fraction(speech, off, np.minimum(s, T)) < params["vad"]["max_silence"]] if len(s) else s)
    # audio: pool vs exact
    t0 = time.perf_counter()
    pooled = towers.segment_embeddings_pool(towers.caption_frames(feats), spans)
    t_pool = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = towers.segment_embeddings_exact(feats, spans)
    t_exact = time.perf_counter() - t0
    n_seg = sum(len(s) for s in spans)
    # boxes: roi vs crop on a sample of each image's boxes
    roi_all, crop_all, picks = [], [], {"segments_same": [], "box_iou": [], "rho_audio": [], "rho_boxes": []}
    t_roi = t_crop = 0.0
    n_box = 0
    for n, i in enumerate(sample):
        w, h = int(items.at[i, "width"]), int(items.at[i, "height"])
        boxes = prop.grid_boxes(bp["grid"], bp["min_side"], bp["min_aspect"], bp["max_aspect"], w / h)
        sub = np.sort(rng.choice(len(boxes), min(cp["boxes_per_image"], len(boxes)), replace=False))
        m = maps[items.at[i, "image_id"]]
        t0 = time.perf_counter()
        R = towers.box_embeddings_roi(m.reshape(m.shape[0], -1).T[None], prop.roi_weights(boxes[sub], *m.shape[1:]))[0]
        t_roi += time.perf_counter() - t0
        t0 = time.perf_counter()
        C = crop.box_embeddings(towers, items.at[i, "path"], boxes[sub])
        t_crop += time.perf_counter() - t0
        n_box += len(sub)
        roi_all.append(R)
        crop_all.append(C)
        if not len(spans[n]):
            continue
        # what the grounding picks with each embedding (over the sampled boxes)
        for key, A, B in (("audio", exact[n], R), ("boxes", pooled[n], C)):
            S_fast, S_slow = R @ pooled[n].T, B @ A.T
            picks[f"rho_{key}"].append(spearmanr(S_fast.ravel(), S_slow.ravel())[0])
        sel = lambda S: select(S.max(0)[None], spans[n][None], gp["iou"], gp["max_keep"], gp["score_ratio"])[0]
        a, b = sel(R @ pooled[n].T), sel(R @ exact[n].T)
        picks["segments_same"].append(len(set(a[a >= 0]) & set(b[b >= 0])) / max(len(set(a[a >= 0]) | set(b[b >= 0])), 1))
        best_r, best_c = (R @ pooled[n].T)[:, a[0]].argmax(), (C @ pooled[n].T)[:, a[0]].argmax()
        picks["box_iou"].append(float(box_iou(boxes[sub][best_r], boxes[sub][best_c])))
    roi_all, crop_all = np.concatenate(roi_all), np.concatenate(crop_all)
    split_items = len(items)
    seg_per_item = n_seg / max(len(sample), 1)
    boxes_per_item = len(prop.grid_boxes(bp["grid"], bp["min_side"], bp["min_aspect"], bp["max_aspect"]))
    images = items["image_id"].nunique()
    result = {
        "captions": int(len(sample)), "segments": int(n_seg), "boxes": int(n_box), "seed": cp["seed"],
        "segments_pool_vs_exact": {
            "cosine": _stats(np.concatenate([_cos(a, b) for a, b in zip(pooled, exact) if len(a)])),
            "score_spearman": _stats(picks["rho_audio"]),
            "accepted_segments_jaccard": _stats(picks["segments_same"]),
            "ms_per_segment": {"pool": 1e3 * t_pool / max(n_seg, 1), "exact": 1e3 * t_exact / max(n_seg, 1)},
            "split_minutes": {"exact": t_exact / max(len(sample), 1) * split_items / 60},
            "segments_per_caption": seg_per_item},
        "boxes_roi_vs_crop": {
            "cosine": _stats(_cos(roi_all, crop_all)),
            "score_spearman": _stats(picks["rho_boxes"]),
            "top_box_iou": _stats(picks["box_iou"]),
            "ms_per_box": {"roi": 1e3 * t_roi / max(n_box, 1), "crop": 1e3 * t_crop / max(n_box, 1)},
            "split_minutes": {"crop": t_crop / max(n_box, 1) * boxes_per_item * images / 60}},
        "device": str(towers.device),
    }
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    with atomic_path(out_md) as tmp:
        tmp.write_text(markdown(result))
    return result


def markdown(r):
    a, b = r["segments_pool_vs_exact"], r["boxes_roi_vs_crop"]
    f = lambda s: "–" if s is None else f"{s['mean']:.3f} (median {s['median']:.3f}, 5th pct {s['p5']:.3f})"
    return "\n".join([
        f"## Fast vs exact embeddings ({r['captions']} captions, {r['segments']} segments, {r['boxes']} boxes, seed {r['seed']})",
        "", "| | segments: pool vs exact | boxes: roi vs crop |", "|---|---|---|",
        f"| cosine of the two embeddings | {f(a['cosine'])} | {f(b['cosine'])} |",
        f"| Spearman of box x segment scores | {f(a['score_spearman'])} | {f(b['score_spearman'])} |",
        f"| accepted segments, Jaccard / top box IoU | {f(a['accepted_segments_jaccard'])} | {f(b['top_box_iou'])} |",
        f"| ms per proposal (fast / exact) | {a['ms_per_segment']['pool']:.3f} / {a['ms_per_segment']['exact']:.3f} | "
        f"{b['ms_per_box']['roi']:.3f} / {b['ms_per_box']['crop']:.3f} |",
        f"| the exact way on the whole split, minutes | {a['split_minutes']['exact']:.1f} | {b['split_minutes']['crop']:.1f} |",
        "", "Times of this sample, one caption or image at a time; the fast modes' real throughput (batched) is in "
        "grounding_report.json.", ""])
