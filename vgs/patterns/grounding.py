"""Grounding selection (2017 paper sec. 4) and the stage that grounds every caption of a split in
its image: score every box x segment pair, keep the best pairs whose segments barely overlap.

The paper walks the list of all (box, segment) pairs sorted by score, accepts a pair unless its
segment's interval IoU with an accepted segment exceeds 0.1, and stops at 10 accepted pairs or when
the score falls below 50% of the top accepted score.  Once a segment is accepted every later pair
with it has IoU 1 and is rejected, and a segment first seen with its best box is either accepted
then or never: so only each segment's best box matters, and the walk is an NMS over segments
ranked by their best box score (exactly the same groundings, from one GEMM and a max over boxes).
When the top score is not positive, "50% of it" lies above it and only the top pair is kept."""
import json
import logging
import resource
import time

import h5py
import numpy as np
import torch
from tqdm import tqdm

from ..cache import read_tsv
from ..runtime import atomic_path, open_h5, strings
from . import proposals as prop
from .proposals import interval_iou
from .towers import CropEncoder, Towers
from .vad import silence_fraction


def select(scores, spans, iou=0.1, max_keep=10, ratio=0.5):
    """Greedy selection for n items at once.  scores (n, S) with -inf where a segment is not a
    candidate (removed by the VAD, or padding); spans (n, S, 2).  Returns (n, max_keep) int64
    indices into S in acceptance order, -1 after an item stopped.  Vectorised over items: at most
    max_keep rounds of argmax + suppression."""
    scores = np.asarray(scores, np.float64)
    spans = np.asarray(spans, np.float64)
    n = len(scores)
    rows = np.arange(n)
    alive = np.isfinite(scores)
    active = np.ones(n, bool)
    top = np.full(n, np.nan)
    out = np.full((n, max_keep), -1, np.int64)
    for r in range(max_keep):
        cand = np.where(alive, scores, -np.inf)
        j = cand.argmax(1) if cand.shape[1] else np.zeros(n, np.int64)
        s = cand[rows, j] if cand.shape[1] else np.full(n, -np.inf)
        ok = np.isfinite(s) & ((r == 0) | (s >= ratio * top))
        active &= ok
        if not active.any():
            break
        out[active, r] = j[active]
        if r == 0:
            top = s.copy()
        over = interval_iou(spans, spans[rows, j][:, None, :]) > iou
        alive &= ~(over & active[:, None])
    return out


# --- the stage: every caption of a split grounded in its image ---------------------------------
log = logging.getLogger(__name__)
CHUNK_IMAGES = 32  # images (and their captions) per step: bounds memory, does not change results
STATUSES = ("grounded", "no_features", "no_vad", "no_image_features", "too_short", "all_silent")


def read_items(utterances_tsv, images_tsv, split):
    """Captions of `split` (sorted by image, utterance) with their image's path and size."""
    u = read_tsv(utterances_tsv, ["utt_id", "image_id", "split"], unique="utt_id")
    im = read_tsv(images_tsv, ["image_id", "path", "width", "height"], unique="image_id")
    items = u[u["split"] == split].merge(im[["image_id", "path", "width", "height"]], on="image_id", how="left")
    if items.empty:
        raise ValueError(f"{utterances_tsv}: no utterances in split {split!r}")
    if items["path"].isna().any():
        raise ValueError(f"{images_tsv}: no entry for image {items.loc[items['path'].isna(), 'image_id'].iloc[0]}")
    return items.sort_values(["image_id", "utt_id"], kind="stable").reset_index(drop=True)


def read_vad(vad_h5):
    with open_h5(vad_h5) as f:
        ids, off, speech = strings(f["utt_ids"][:]), f["offsets"][:], f["speech"][:].astype(bool)
    return {u: (int(off[i]), int(off[i + 1] - off[i])) for i, u in enumerate(ids)}, speech


class Store:
    """Accepted groundings, appended per chunk of images."""

    def __init__(self):
        self.cols = {k: [] for k in ("item", "box", "span", "score", "rank", "box_emb", "seg_emb")}

    def add(self, **cols):
        for k, v in cols.items():
            self.cols[k].append(np.asarray(v))

    def arrays(self, dim):
        empty = {"item": (0,), "box": (0, 4), "span": (0, 2), "score": (0,), "rank": (0,),
                 "box_emb": (0, dim), "seg_emb": (0, dim)}
        return {k: np.concatenate(v) if v else np.zeros(empty[k]) for k, v in self.cols.items()}


def ground_split(towers_path, convmap_h5, fbank_h5, vad_h5, utterances_tsv, images_tsv, params,
                 onnx_path=None, threads=1):
    """Ground every caption of params['split'].  Returns (arrays for groundings.h5, items table,
    report dict)."""
    t_start, c_start = time.perf_counter(), time.process_time()
    bp, sp, gp = params["boxes"], params["segments"], params["grounding"]
    items = read_items(utterances_tsv, images_tsv, params["split"])
    for image_id, path, w, h in items[["image_id", "path", "width", "height"]].drop_duplicates("image_id").itertuples(index=False):
        prop.check_image_size(f"{image_id} ({path})", int(w), int(h), bp["grid"])
    towers = Towers(towers_path)
    vad, speech = read_vad(vad_h5)
    crop = CropEncoder(onnx_path, threads) if bp["embed"] == "crop" else None
    status = np.array(["grounded"] * len(items), dtype=object)
    n_seg, n_kept = np.zeros(len(items), np.int64), np.zeros(len(items), np.int64)
    n_box = np.zeros(len(items), np.int64)
    store, timing = Store(), {"audio_s": 0.0, "boxes_s": 0.0, "score_select_s": 0.0, "read_s": 0.0}
    pairs = 0
    boxes_for = {}  # image aspect -> (boxes, roi weights)
    with open_h5(fbank_h5) as fb, open_h5(convmap_h5) as cm:
        cm_row = {i: r for r, i in enumerate(strings(cm["image_ids"][:]))}
        rows, cols = cm["convmap"].shape[2:]
        image_ids = items["image_id"].drop_duplicates().to_numpy()
        chunk = CHUNK_IMAGES
        for a in tqdm(range(0, len(image_ids), chunk), desc="grounding", unit="chunk", mininterval=10):
            t0 = time.perf_counter()
            chunk_ids = image_ids[a:a + chunk]
            sel = np.flatnonzero(items["image_id"].isin(set(chunk_ids)).to_numpy())
            feats = {}
            for i in sel:
                u = items.at[i, "utt_id"]
                if u not in fb["feats"]:
                    status[i] = "no_features"
                elif u not in vad:
                    status[i] = "no_vad"
                elif items.at[i, "image_id"] not in cm_row and crop is None:
                    status[i] = "no_image_features"
                else:
                    feats[i] = np.asarray(fb["feats"][u], np.float32)
            have = sorted((i for i in chunk_ids if i in cm_row and crop is None), key=cm_row.get)  # h5py wants increasing rows
            maps = cm["convmap"][np.array([cm_row[i] for i in have], np.int64)] if have else None
            cells = {i: maps[k].reshape(maps.shape[1], -1).T for k, i in enumerate(have)}
            timing["read_s"] += time.perf_counter() - t0

            # segments, VAD filter, segment embeddings
            t0 = time.perf_counter()
            spans = {}
            for i, f in feats.items():
                s = prop.segments(len(f), sp["step"], sp["min_frames"], sp["max_frames"])
                n_seg[i] = len(s)
                if not len(s):
                    status[i] = "too_short"
                    continue
                off, T = vad[items.at[i, "utt_id"]]
                keep = silence_fraction(speech, off, np.minimum(s, T)) < params["vad"]["max_silence"]
                n_kept[i] = int(keep.sum())
                if not keep.any():
                    status[i] = "all_silent"
                    continue
                spans[i] = s[keep]
            todo = list(spans)
            if sp["embed"] == "pool":
                embs = towers.segment_embeddings_pool(towers.caption_frames([feats[i] for i in todo]),
                                                      [spans[i] for i in todo])
            else:
                embs = towers.segment_embeddings_exact([feats[i] for i in todo], [spans[i] for i in todo])
            emb = dict(zip(todo, embs))
            timing["audio_s"] += time.perf_counter() - t0

            # box embeddings of the chunk's images, one aspect ratio at a time
            t0 = time.perf_counter()
            caps_of = {}
            for i in todo:
                caps_of.setdefault(items.at[i, "image_id"], []).append(i)
            size = {items.at[c[0], "image_id"]: (int(items.at[c[0], "width"]), int(items.at[c[0], "height"]))
                    for c in caps_of.values()}
            box_emb, boxes_of = {}, {}
            for key in sorted({round(w / h, 6) for w, h in size.values()}):
                imgs = [m for m, (w, h) in size.items() if round(w / h, 6) == key]
                if key not in boxes_for:
                    b = prop.grid_boxes(bp["grid"], bp["min_side"], bp["min_aspect"], bp["max_aspect"], key)
                    boxes_for[key] = (b, prop.roi_weights(b, rows, cols))
                boxes, W = boxes_for[key]
                if crop is None:
                    E = towers.box_embeddings_roi(np.stack([cells[m] for m in imgs]), W)
                else:
                    E = [crop.box_embeddings(towers, items.at[caps_of[m][0], "path"], boxes) for m in imgs]
                box_emb.update(zip(imgs, E))
                boxes_of.update((m, boxes) for m in imgs)
            timing["boxes_s"] += time.perf_counter() - t0

            # scores (one GEMM per image: its boxes x all segments of its captions) and selection
            t0 = time.perf_counter()
            for image_id, caps in caps_of.items():
                B, boxes = box_emb[image_id], boxes_of[image_id]
                A = np.concatenate([emb[i] for i in caps])
                S = torch.as_tensor(B, device=towers.device) @ torch.as_tensor(A, device=towers.device).T
                best, arg = (t.cpu().numpy() for t in S.max(0))
                pairs += S.numel()
                lens = np.array([len(emb[i]) for i in caps])
                starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
                sc = np.full((len(caps), lens.max()), -np.inf)
                spn = np.zeros((len(caps), lens.max(), 2))
                for k, i in enumerate(caps):  # one slice per caption (not per segment)
                    sc[k, :lens[k]] = best[starts[k]:starts[k] + lens[k]]
                    spn[k, :lens[k]] = spans[i]
                picked = select(sc, spn, gp["iou"], gp["max_keep"], gp["score_ratio"])
                for k, i in enumerate(caps):
                    j = picked[k][picked[k] >= 0]
                    g = starts[k] + j
                    store.add(item=np.full(len(j), i), box=boxes[arg[g]], span=spans[i][j], score=sc[k, j],
                              rank=np.arange(len(j)), box_emb=B[arg[g]], seg_emb=A[g])
                    n_box[i] = len(boxes)
            timing["score_select_s"] += time.perf_counter() - t0
    arrays = store.arrays(towers.meta["embed_dim"])
    items = items.assign(status=status, n_segments=n_seg, n_segments_speech=n_kept, n_boxes=n_box,
                         n_groundings=np.bincount(arrays["item"].astype(np.int64), minlength=len(items)))
    wall, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    grounded = items["status"] == "grounded"
    report = {
        "split": params["split"], "captions": int(len(items)), "images": int(items["image_id"].nunique()),
        "status_counts": {s: int((items["status"] == s).sum()) for s in STATUSES},
        "not_grounded": items.loc[~grounded, ["utt_id", "status"]].to_dict("records"),
        "groundings": int(len(arrays["item"])),
        "groundings_per_caption": float(items.loc[grounded, "n_groundings"].mean()) if grounded.any() else 0.0,
        "box_proposals_per_item": float(items.loc[grounded, "n_boxes"].mean()) if grounded.any() else 0.0,
        "segment_proposals_per_item": float(items.loc[grounded, "n_segments"].mean()) if grounded.any() else 0.0,
        "segments_after_vad_per_item": float(items.loc[grounded, "n_segments_speech"].mean()) if grounded.any() else 0.0,
        "pairs_scored": int(pairs), "pairs_per_s": pairs / max(timing["score_select_s"], 1e-9),
        "modes": {"boxes": bp["embed"], "segments": sp["embed"]},
        "image_tower_affine": towers._affine, "device": str(towers.device),
        "seconds": {k: round(v, 2) for k, v in timing.items()}, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "towers": towers.meta,
    }
    return arrays, items, report


def write_groundings(path, arrays, items, params, report):
    """results/patterns/{system}/groundings.h5: one row per accepted grounding and one per caption."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        g = f.create_group("groundings")
        for k, v in arrays.items():
            dt = {"item": np.int64, "rank": np.int32, "span": np.int32}.get(k, np.float32)
            g.create_dataset(k, data=np.asarray(v).astype(dt))
        it = f.create_group("items")
        for k in ("utt_id", "image_id", "path", "status"):
            it.create_dataset(k, data=items[k].astype(str).to_numpy(dtype=object), dtype=h5py.string_dtype())
        for k in ("width", "height", "n_segments", "n_segments_speech", "n_boxes", "n_groundings"):
            it.create_dataset(k, data=items[k].to_numpy(np.int64))
        f.attrs.update(params=json.dumps(params, sort_keys=True), towers=json.dumps(report["towers"]),
                       layout="groundings/*[g]: item (row of items/*), box (x0, y0, x1, y1 image fractions), "
                              "span ([start, end) feature frames), score, rank in its caption, box_emb, seg_emb")
