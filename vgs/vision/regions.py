"""Per-image R-CNN-style fragments: 19 best proposals + the whole frame, each a CNN feature.

Region layout of every image (R = detections + 1 = 20 rows):
  row 0            the whole frame (resized to the encoder's input, no context)
  rows 1..n        the n <= detections best proposals, best score first (n = n_proposals)
  rows n+1..R-1    padding when fewer proposals survive: copies of row 0 (a real region, so
                   code that ignores n_proposals still sees sensible features)."""
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from ..images import BadImage, load_image  # noqa: F401  (BadImage: part of this module's interface)
from . import encoder as enc
from . import proposals as prop

log = logging.getLogger(__name__)


@dataclass
class Candidates:
    image_id: str
    image: np.ndarray | None = None
    boxes: np.ndarray | None = None  # (K, 4) int, after size filter, dedup and cap
    n_raw: int = 0  # selective-search boxes before filtering
    error: str | None = None
    seconds: float = 0.0


def propose(image, p):
    """Candidate boxes for one image: selective search -> size filter -> near-duplicate removal
    (IoU > dedup_iou with a larger box: their warps look alike and would score alike, so
    scoring them all buys little) -> at most max_candidates (largest first).  Deterministic."""
    h, w = image.shape[:2]
    raw = prop.selective_search(image, p["strategy"], p["max_side"], p["ss_k"], p["ss_sigma"])
    boxes = prop.size_filter(raw, w, h, p["min_side_frac"], p["min_area_frac"])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]).astype(np.float64)
    keep = prop.nms(boxes, area, p["dedup_iou"], p["max_candidates"] or None)
    return boxes[np.sort(keep)], len(raw)  # back to the sorted (canonical) order


def _candidates(item, p):
    image_id, path = item
    t0 = time.perf_counter()
    try:
        image = load_image(path)
        boxes, n_raw = propose(image, p)
        return Candidates(image_id, image, boxes, n_raw, seconds=time.perf_counter() - t0)
    except BadImage as e:
        return Candidates(image_id, error=str(e))


def _lookahead(fn, items, pool, ahead):
    """pool.map with at most `ahead` results in flight (bounded memory, in order)."""
    it, q = iter(items), deque()
    for x in it:
        q.append(pool.submit(fn, x))
        if len(q) >= ahead:
            yield q.popleft().result()
    while q:
        yield q.popleft().result()


def region_crops(image, boxes, size, context_pad):
    """Row 0 the whole frame, then each candidate's context-padded warp: uint8 (1 + K, S, S, 3)."""
    return np.concatenate([prop.full_frame(image, size)[None],
                           prop.warp_regions(image, boxes, size, context_pad)])


def nms_order(width, height, boxes, probs, p):
    """Indices of the kept detections among `boxes`, best first: score = max class probability
    (`probs` one row per box), greedy NMS (per top-1 class if nms_per_class, as R-CNN), at most
    `detections`."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    # shifting each box by (top-1 class id x image size) keeps classes from suppressing each other
    shift = probs.argmax(axis=1)[:, None] * (max(width, height) + 1) if p["nms_per_class"] else 0
    return prop.nms(boxes + shift, probs.max(axis=1), p["nms_iou"], p["detections"])


def region_rows(width, height, boxes, features, logits, p):
    """The R store rows of one image from the CNN outputs of region_crops(image, boxes): row 0
    the whole frame, rows 1..n the n kept `boxes` (best first), then copies of row 0.

    -> dict of per-region arrays (boxes, features, scores, top_classes, top_probs) with R rows,
    and n_proposals (real detections kept)."""
    R, k, n = p["detections"] + 1, p["top_k"], len(boxes)
    probs = enc.softmax(np.asarray(logits, np.float64))
    rows = np.concatenate([np.arange(n + 1), np.zeros(R - 1 - n, np.int64)])  # pad with the full frame
    all_boxes = np.concatenate([[[0, 0, width, height]], np.reshape(boxes, (-1, 4))]).astype(np.float32)
    top = np.argsort(-probs[rows], axis=1, kind="stable")[:, :k]
    return dict(
        boxes=all_boxes[rows],
        features=np.asarray(features, np.float32)[rows],
        scores=probs.max(axis=1)[rows].astype(np.float32),
        top_classes=top.astype(np.int16),
        top_probs=np.take_along_axis(probs[rows], top, axis=1).astype(np.float32),
        n_proposals=n,
    )


def select_regions(width, height, boxes, features, logits, p):
    """R-CNN selection (scoring: crops) from the CNN outputs of region_crops() over every
    candidate: NMS on the crops' own scores, then the store rows (region_rows)."""
    kept = nms_order(width, height, boxes, enc.softmax(np.asarray(logits, np.float64))[1:], p)
    rows = np.concatenate([[0], 1 + kept])
    return region_rows(width, height, np.reshape(boxes, (-1, 4))[kept], np.asarray(features)[rows],
                       np.asarray(logits)[rows], p)


def map_scores(scorer, head, group):
    """Class probabilities of every candidate of each image from one whole-image CNN pass
    (scoring: convmap): the box's mean over the last conv map, through the classifier `head`."""
    maps = scorer.run(enc.preprocess(np.stack([prop.full_frame(c.image, scorer.size) for c in group])),
                      ("convmap",))["convmap"]
    W, b = head
    return [enc.softmax(prop.box_means(m, c.boxes, c.image.shape[1], c.image.shape[0]) @ W.T + b)
            for c, m in zip(group, maps)]


def _encode_group(group, runner, p, scorer=None, head=None):
    """One CNN pass over the crops of several images (full batches even with few crops each).

    scoring crops: every candidate is cropped and scored by its own CNN pass (R-CNN).
    scoring convmap: candidates are scored from one conv map per image (map_scores), and only
    the kept detections are cropped for their features."""
    if scorer is not None:
        boxes = [c.boxes[nms_order(c.image.shape[1], c.image.shape[0], c.boxes, pr, p)]
                 for c, pr in zip(group, map_scores(scorer, head, group))]
    else:
        boxes = [c.boxes for c in group]
    crops = [region_crops(c.image, bx, runner.size, p["context_pad"]) for c, bx in zip(group, boxes)]
    out = runner.run(enc.preprocess(np.concatenate(crops)), ("features", "logits"), p["batch_size"])
    ends = np.cumsum([len(x) for x in crops])[:-1]
    feats, logits = np.split(out["features"], ends), np.split(out["logits"], ends)
    pick = region_rows if scorer is not None else select_regions
    return [pick(c.image.shape[1], c.image.shape[0], bx, f, l, p)
            for c, bx, f, l in zip(group, boxes, feats, logits)], sum(map(len, crops))


def extract(items, runner, p, sink, threads=1, progress=None, scorer=None):
    """Run the stage over (image_id, path) items, handing each finished image to `sink(id, result)`.

    Proposal generation (OpenCV, releases the GIL) runs in a thread pool ahead of the CNN; crops
    of consecutive images are pooled until a CNN batch is full.  `scorer`: the encoder whose conv
    map scores the candidates (scoring: convmap); None scores each candidate's crop.  Returns
    per-run statistics; undecodable images are skipped, counted and logged."""
    stats = dict(images=0, skipped=[], candidates=0, crops=0, raw_boxes=0, proposals=0,
                 padded_images=0, proposal_s=0.0, cnn_s=0.0)
    head = scorer.head() if scorer is not None else None
    n_crops = ((lambda c: 1 + min(len(c.boxes), p["detections"])) if scorer is not None
               else (lambda c: 1 + len(c.boxes)))
    group = []

    def run_group():
        t0 = time.perf_counter()
        results, crops = _encode_group(group, runner, p, scorer, head)
        stats["cnn_s"] += time.perf_counter() - t0
        stats["crops"] += crops
        for c, res in zip(group, results):
            stats["images"] += 1
            stats["candidates"] += len(c.boxes)
            stats["raw_boxes"] += c.n_raw
            stats["proposal_s"] += c.seconds
            stats["proposals"] += res["n_proposals"]
            stats["padded_images"] += int(res["n_proposals"] < p["detections"])
            sink(c.image_id, {**res, "n_raw_boxes": c.n_raw, "n_candidates": len(c.boxes)})
            if progress is not None:
                progress.update(1)
        group.clear()

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for c in _lookahead(lambda it: _candidates(it, p), items, pool, 2 * max(1, threads)):
            if c.error:
                log.warning("skipping image %s: %s", c.image_id, c.error)
                stats["skipped"].append({"image_id": c.image_id, "error": c.error})
                if progress is not None:
                    progress.update(1)
                continue
            group.append(c)
            if sum(map(n_crops, group)) >= p["batch_size"]:
                run_group()
        if group:
            run_group()
    return stats
