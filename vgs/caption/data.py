"""One split's whole spoken captions (log-mel frames) and whole-image features, from the caches of
earlier stages: results/speech/fbank.h5 (feats/<utt_id>: T x F), results/vision/regions.h5 (row 0 of
every image = the whole frame) or results/vision/convmap.h5 (the last-conv map), and the manifest.

Frames are kept packed (all captions' frames concatenated, CSR offsets) and padded per batch, so
memory follows the audio's length, not max_frames x captions.  A caption longer than max_frames is
truncated (counted); a caption without features (skipped upstream) or whose image has no features
is left out with a count and a logged example."""
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..runtime import open_h5, strings

log = logging.getLogger(__name__)


@dataclass
class CaptionSplit:
    image_ids: np.ndarray     # (K,) str
    images: np.ndarray        # (K, C) whole-frame vectors or (K, C, H, W) conv maps (float16/32)
    cap_ids: np.ndarray       # (Cn,) utt ids, sorted by (image, utt)
    cap_image: np.ndarray     # (Cn,) index of each caption's image
    frames: np.ndarray        # (sum of lengths, F) float32, captions packed in cap_ids order
    offsets: np.ndarray       # (Cn + 1,) caption c is frames[offsets[c]:offsets[c + 1]]
    report: dict = field(default_factory=dict)  # counts of truncated / left-out items

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def feat_dim(self):
        return int(self.frames.shape[1])

    def sizes(self):
        return {"images": int(len(self.image_ids)), "captions": int(len(self.cap_ids)),
                "frames": int(self.offsets[-1]), "feat_dim": self.feat_dim,
                "image_shape": list(self.images.shape[1:]), **self.report}


def read_frames(fbank_h5, utt_ids, max_frames):
    """Packed frames of `utt_ids` (a list; order kept), truncated to max_frames.
    Returns (frames (sum T, F), offsets, kept utt ids, {missing: [...], truncated: [...]})."""
    chunks, kept, missing, truncated = [], [], [], []
    with open_h5(fbank_h5) as f:
        if "feats" not in f:
            raise ValueError(f"{fbank_h5}: missing group 'feats'")
        g = f["feats"]
        for u in utt_ids:
            if u not in g:
                missing.append(u)
                continue
            x = g[u][:max_frames]
            if g[u].shape[0] > max_frames:
                truncated.append(u)
            if x.shape[0] == 0 or not np.isfinite(x).all():
                missing.append(u)
                continue
            chunks.append(np.asarray(x, np.float32))
            kept.append(u)
    dims = {c.shape[1] for c in chunks}
    if len(dims) > 1:
        raise ValueError(f"{fbank_h5}: utterances have different feature dimensions {sorted(dims)}")
    lens = np.array([len(c) for c in chunks], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    frames = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    return frames, offsets, kept, {"missing": missing, "truncated": truncated}


def read_images(h5_path, image_ids, kind, grid=None):
    """Whole-image features of `image_ids` (a list): kind fc -> regions.h5 row 0 (K, C);
    kind convmap -> convmap.h5 (K, C, H, W), average-pooled to grid x grid when smaller.
    Returns (features, kept ids, missing ids)."""
    with open_h5(h5_path) as f:
        key = "features" if kind == "fc" else "convmap"
        for k in ("image_ids", key):
            if k not in f:
                raise ValueError(f"{h5_path}: missing dataset {k!r} (image tower {kind!r})")
        row_of = {i: r for r, i in enumerate(strings(f["image_ids"][:]))}
        kept = [i for i in image_ids if i in row_of]
        missing = [i for i in image_ids if i not in row_of]
        rows = np.array([row_of[i] for i in kept], np.int64)
        order = np.argsort(rows)  # h5py wants increasing indices
        ds = f[key]
        shape = (len(rows),) + ((ds.shape[2],) if kind == "fc" else ds.shape[1:])
        out = np.empty(shape, ds.dtype if kind == "convmap" else np.float32)
        if len(rows):
            out[order] = ds[rows[order], 0] if kind == "fc" else ds[rows[order]]
    if kind == "convmap" and grid and grid < out.shape[-1]:
        out = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(out.astype(np.float32)), grid)
        out = out.numpy().astype(np.float16)
    if not np.isfinite(out.astype(np.float32) if out.dtype == np.float16 else out).all():
        raise ValueError(f"{h5_path}: non-finite image features")
    return out, kept, missing


def read_utterances(path, split):
    u = pd.read_csv(path, sep="\t", dtype={"utt_id": str, "image_id": str, "split": str}, keep_default_na=False)
    missing = {"utt_id", "image_id", "split"} - set(u.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    u = u[u["split"] == split].sort_values(["image_id", "utt_id"])
    if u.empty:
        raise ValueError(f"{path}: no utterances in split {split!r}")
    return u


def load_split(fbank_h5, image_h5, image_kind, utterances_tsv, split, max_frames, grid=None):
    u = read_utterances(utterances_tsv, split)
    images, img_ids, no_image = read_images(image_h5, sorted(set(u["image_id"])), image_kind, grid)
    if no_image:
        log.warning("%s: %d %s images have no features (left out with their captions), e.g. %s",
                    image_h5, len(no_image), split, no_image[:3])
    u = u[u["image_id"].isin(set(img_ids))]
    frames, offsets, kept, bad = read_frames(fbank_h5, list(u["utt_id"]), max_frames)
    if bad["missing"]:
        log.warning("%s: %d %s captions have no usable features (left out), e.g. %s",
                    fbank_h5, len(bad["missing"]), split, bad["missing"][:3])
    if bad["truncated"]:
        log.info("%d %s captions longer than max_frames=%d truncated", len(bad["truncated"]), split, max_frames)
    img_index = {i: k for k, i in enumerate(img_ids)}
    image_of = dict(zip(u["utt_id"], u["image_id"]))
    report = {"truncated": len(bad["truncated"]), "captions_without_features": len(bad["missing"]),
              "images_without_features": len(no_image), "max_frames": int(max_frames),
              "examples": {"truncated": bad["truncated"][:5], "captions_without_features": bad["missing"][:5],
                           "images_without_features": no_image[:5]}}
    d = CaptionSplit(np.array(img_ids, dtype=object), images, np.array(kept, dtype=object),
                     np.array([img_index[image_of[c]] for c in kept], np.int64), frames, offsets, report)
    if not len(kept):
        raise ValueError(f"{fbank_h5}: no {split} caption has features")
    log.info("split %s: %s", split, {k: v for k, v in d.sizes().items() if k != "examples"})
    return d


def pad_batch(frames, offsets, idx):
    """Zero-padded (B, T, F) tensor and lengths (B,) of packed items `idx` (T = longest of them)."""
    idx = np.asarray(idx)
    starts, lens = offsets[idx], offsets[idx + 1] - offsets[idx]
    T = max(1, int(lens.max()))
    pos = np.arange(T)
    valid = pos[None, :] < lens[:, None]
    rows = np.where(valid, starts[:, None] + pos[None, :], 0)
    x = frames[rows] * valid[..., None]
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(lens)
