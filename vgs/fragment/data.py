"""Load one split's images (region vectors) and captions (packed word vectors) for the model."""
import logging
from dataclasses import dataclass

import numpy as np

from ..cache import read_tsv
from ..runtime import open_h5, strings

log = logging.getLogger(__name__)


@dataclass
class SplitData:
    image_ids: np.ndarray      # (K,) str
    feats: np.ndarray          # (K, R, D) float32 region vectors
    boxes: np.ndarray          # (K, R, 4) x0,y0,x1,y1 (zeros if unknown)
    cap_ids: np.ndarray        # (C,) utt ids
    cap_image: np.ndarray      # (C,) index of each caption's image
    words: np.ndarray          # (T, Dw) float32 word vectors, packed caption by caption
    seg: np.ndarray            # (T,) caption index of each word
    word_text: np.ndarray      # (T,) ground-truth word (figures/grounding only; never model input)
    n_regions: np.ndarray = None  # (K,) real regions per image (rows beyond are padding copies); None: all

    def region_mask(self):
        """(K, R) bool: rows that are real regions (regions.h5: row 0 + n_proposals detections)."""
        K, R = self.feats.shape[:2]
        n = np.full(K, R) if self.n_regions is None else self.n_regions
        return np.arange(R)[None, :] < n[:, None]

    @property
    def offsets(self):
        """CSR offsets: words of caption c are rows offsets[c]:offsets[c+1]."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.seg, minlength=len(self.cap_ids)))])

    def sizes(self):
        return {"images": int(len(self.image_ids)), "captions": int(len(self.cap_ids)),
                "words": int(len(self.seg)), "regions_per_image": int(self.feats.shape[1]),
                "real_regions": int(self.region_mask().sum()), "image_dim": int(self.feats.shape[2]), "word_dim": int(self.words.shape[1]),
                "empty_captions": int((np.bincount(self.seg, minlength=len(self.cap_ids)) == 0).sum())}


def read_utterances(path):
    return read_tsv(path, ["utt_id", "image_id", "split"], unique="utt_id")


def load_split(regions_h5, words_h5, utterances_tsv, split):
    """Images of `split` with their captions; captions lacking word vectors stay (empty) and are counted."""
    u = read_utterances(utterances_tsv)
    u = u[u["split"] == split]
    if u.empty:
        raise ValueError(f"{utterances_tsv}: no utterances in split {split!r}")
    with open_h5(regions_h5) as f:
        for key in ("image_ids", "features"):
            if key not in f:
                raise ValueError(f"{regions_h5}: missing dataset {key!r}")
        all_ids = strings(f["image_ids"][:])
        row_of = {i: r for r, i in enumerate(all_ids)}
        wanted = sorted(set(u["image_id"]))
        absent = [i for i in wanted if i not in row_of]
        if absent:
            log.warning("%s: %d %s images have no region vectors (skipped with their captions), e.g. %s",
                        regions_h5, len(absent), split, absent[:3])
            wanted = [i for i in wanted if i in row_of]
        rows = np.array([row_of[i] for i in wanted], dtype=np.int64)
        order = np.argsort(rows)  # h5py fancy indexing wants increasing indices
        feats = np.empty((len(rows),) + f["features"].shape[1:], np.float32)
        feats[order] = f["features"][rows[order]]
        boxes = np.zeros(feats.shape[:2] + (4,), np.float32)
        if "boxes" in f:
            boxes[order] = f["boxes"][rows[order]]
        n_regions = np.full(len(rows), feats.shape[1], np.int64)
        if "n_proposals" in f:  # padding rows copy row 0: exclude them from statistics/baselines
            n_regions[order] = np.minimum(f["n_proposals"][:][rows[order]].astype(np.int64) + 1, feats.shape[1])
    if not np.isfinite(feats).all():
        raise ValueError(f"{regions_h5}: non-finite region features in split {split!r}")
    img_index = {i: k for k, i in enumerate(wanted)}
    u = u[u["image_id"].isin(img_index)].sort_values(["image_id", "utt_id"])
    cap_ids = u["utt_id"].to_numpy(dtype=object)
    cap_image = u["image_id"].map(img_index).to_numpy(np.int64)
    cap_index = {c: j for j, c in enumerate(cap_ids)}

    with open_h5(words_h5) as f:
        for key in ("vectors", "utt_ids", "index"):
            if key not in f:
                raise ValueError(f"{words_h5}: missing dataset {key!r}")
        utt = strings(f["utt_ids"][:])
        sel = np.array([x in cap_index for x in utt], dtype=bool)
        vec = f["vectors"][sel] if sel.any() else np.zeros((0, f["vectors"].shape[1]), np.float32)
        idx = f["index"][:][sel]
        text = strings(f["words"][:][sel]) if "words" in f else np.array([""] * int(sel.sum()), dtype=object)
    seg = np.array([cap_index[x] for x in utt[sel]], dtype=np.int64)
    order = np.lexsort((idx, seg))
    vec, seg, text = vec[order].astype(np.float32), seg[order], text[order]
    bad = ~np.isfinite(vec).all(1) | (np.linalg.norm(vec, axis=1) == 0)
    if bad.any():
        log.warning("%s: %d word vectors non-finite or zero in split %s: skipped", words_h5, int(bad.sum()), split)
        vec, seg, text = vec[~bad], seg[~bad], text[~bad]
    d = SplitData(np.array(wanted, dtype=object), feats, boxes, cap_ids, cap_image, vec, seg, text, n_regions)
    s = d.sizes()
    if s["empty_captions"]:
        log.warning("%s: %d of %d %s captions have no word vectors (kept: they score 0 everywhere)",
                    words_h5, s["empty_captions"], s["captions"], split)
    log.info("split %s: %s", split, s)
    return d
