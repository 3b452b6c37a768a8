"""One split's whole spoken captions (frame features) and whole-image features, from the caches of
earlier stages: the frame features of speech.features (results/speech/fbank.h5 or ssl.h5,
feats/<utt_id>: T x F, attribute frame_shift_ms), results/vision/regions.h5 (row 0 of every image =
the whole frame) or results/vision/convmap.h5 (the last-conv map), and the manifest.

Lengths in config are in 10 ms frames (max_frames) or seconds (fixed_seconds) and are converted to
the features' own frame shift (log-mels 10 ms, wav2vec 2.0 20 ms), so a setting means the same
stretch of speech whatever the features.  Frames are kept packed (all captions' frames
concatenated, CSR offsets) and padded per batch, so memory follows the audio's length, not
max_frames x captions.  A caption longer than the limit is truncated (counted); a caption without
features (skipped upstream) or whose image has no features is left out with a count and a logged
example.  With fixed_seconds every caption is cropped and zero-padded to exactly that length (the
padding is part of the input, as in MILAN's length ablation): `pad_to` frames per caption."""
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from ..cache import read_tsv
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
    pad_to: int | None = None  # fixed input length in frames (fixed_seconds), else per-batch padding

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


def frame_shift_ms(feats_h5):
    """The frame shift of a frame-feature file (its attribute, written by every feature extractor)."""
    with open_h5(feats_h5) as f:
        if "frame_shift_ms" not in f.attrs:
            raise ValueError(f"{feats_h5}: no attribute 'frame_shift_ms' (not a frame-feature file of the speech stage)")
        return float(f.attrs["frame_shift_ms"])


def frames_for(feats_h5, max_frames=None, fixed_seconds=None):
    """(limit, pad_to) in the file's frames: max_frames counts 10 ms frames, fixed_seconds seconds."""
    shift = frame_shift_ms(feats_h5)
    if fixed_seconds:
        n = max(1, round(fixed_seconds * 1000.0 / shift))
        return n, n
    return max(1, round(max_frames * 10.0 / shift)), None


def read_frames(feats_h5, utt_ids, max_frames):
    """Packed frames of `utt_ids` (a list; order kept), truncated to max_frames (the file's frames).
    Returns (frames (sum T, F), offsets, kept utt ids, {missing: [...], truncated: [...]})."""
    chunks, kept, missing, truncated = [], [], [], []
    with open_h5(feats_h5) as f:
        if "feats" not in f:
            raise ValueError(f"{feats_h5}: missing group 'feats'")
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
        raise ValueError(f"{feats_h5}: utterances have different feature dimensions {sorted(dims)}")
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
    u = read_tsv(path, ["utt_id", "image_id", "split"], unique="utt_id")
    u = u[u["split"] == split].sort_values(["image_id", "utt_id"])
    if u.empty:
        raise ValueError(f"{path}: no utterances in split {split!r}")
    return u


def load_split(feats_h5, image_h5, image_kind, utterances_tsv, split, max_frames, grid=None, fixed_seconds=None):
    """max_frames: in 10 ms frames; fixed_seconds: crop and pad every caption to this length."""
    max_frames, pad_to = frames_for(feats_h5, max_frames, fixed_seconds)
    u = read_utterances(utterances_tsv, split)
    images, img_ids, no_image = read_images(image_h5, sorted(set(u["image_id"])), image_kind, grid)
    if no_image:
        log.warning("%s: %d %s images have no features (left out with their captions), e.g. %s",
                    image_h5, len(no_image), split, no_image[:3])
    u = u[u["image_id"].isin(set(img_ids))]
    frames, offsets, kept, bad = read_frames(feats_h5, list(u["utt_id"]), max_frames)
    if bad["missing"]:
        log.warning("%s: %d %s captions have no usable features (left out), e.g. %s",
                    feats_h5, len(bad["missing"]), split, bad["missing"][:3])
    if bad["truncated"]:
        log.info("%d %s captions longer than %d frames truncated", len(bad["truncated"]), split, max_frames)
    img_index = {i: k for k, i in enumerate(img_ids)}
    image_of = dict(zip(u["utt_id"], u["image_id"]))
    report = {"truncated": len(bad["truncated"]), "captions_without_features": len(bad["missing"]),
              "images_without_features": len(no_image), "max_frames": int(max_frames),
              "pad_to": pad_to, "frame_shift_ms": frame_shift_ms(feats_h5),
              "examples": {"truncated": bad["truncated"][:5], "captions_without_features": bad["missing"][:5],
                           "images_without_features": no_image[:5]}}
    d = CaptionSplit(np.array(img_ids, dtype=object), images, np.array(kept, dtype=object),
                     np.array([img_index[image_of[c]] for c in kept], np.int64), frames, offsets, report, pad_to)
    if not len(kept):
        raise ValueError(f"{feats_h5}: no {split} caption has features")
    log.info("split %s: %s", split, {k: v for k, v in d.sizes().items() if k != "examples"})
    return d


def pad_batch(frames, offsets, idx, pad_to=None):
    """Zero-padded (B, T, F) tensor and lengths (B,) of packed items `idx` (T = longest of them);
    `pad_to`: T = pad_to and every length = pad_to (the padding counts as input)."""
    idx = np.asarray(idx)
    starts, lens = offsets[idx], offsets[idx + 1] - offsets[idx]
    T = pad_to or max(1, int(lens.max()))
    pos = np.arange(T)
    valid = pos[None, :] < lens[:, None]
    rows = np.where(valid, starts[:, None] + pos[None, :], 0)
    x = frames[rows] * valid[..., None]
    if pad_to:
        lens = np.full(len(idx), pad_to, np.int64)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(lens)
