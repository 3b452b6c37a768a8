"""A learnable toy corpus with known answers, for tests: each image holds 1-3 of n classes (its
feature = the classes' prototypes + noise; as a conv map, each class lights one cell), and each of its
spoken captions is noise with a short fixed "word" pattern per class inserted at random times, plus
filler words.  Also written as pipeline-format caches (fbank.h5, regions.h5, convmap.h5, manifest)."""
import h5py
import numpy as np
import pandas as pd

from .data import CaptionSplit


def make_toy(n_images=60, n_classes=6, caps_per_image=3, feat_dim=8, image_dim=16, grid=3, word_frames=6,
             frames=(30, 70), noise=0.5, seed=0, image_kind="fc"):
    rng = np.random.default_rng(seed)
    words = rng.normal(size=(n_classes + 2, word_frames, feat_dim)) * 1.5  # last two: fillers
    protos = rng.normal(size=(n_classes, image_dim)) * 2
    objs = [rng.choice(n_classes, size=rng.integers(1, 4), replace=False) for _ in range(n_images)]
    if image_kind == "fc":
        images = np.stack([protos[o].sum(0) for o in objs]) + rng.normal(size=(n_images, image_dim)) * noise
    else:  # (K, C, grid, grid): each object in its own random cell
        images = rng.normal(size=(n_images, image_dim, grid, grid)) * noise
        for k, o in enumerate(objs):
            for c, cell in zip(o, rng.choice(grid * grid, size=len(o), replace=False)):
                images[k, :, cell // grid, cell % grid] += protos[c]
    chunks, cap_image = [], []
    for k, o in enumerate(objs):
        for _ in range(caps_per_image):
            toks = list(o) + list(n_classes + rng.integers(0, 2, rng.integers(0, 3)))
            T = int(rng.integers(*frames))
            x = rng.normal(size=(T, feat_dim)) * noise
            starts = np.sort(rng.choice(np.arange(0, T - word_frames, word_frames), size=len(toks), replace=False))
            for w, s in zip(rng.permutation(toks), starts):
                x[s:s + word_frames] += words[w]
            chunks.append(x.astype(np.float32))
            cap_image.append(k)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])])
    return CaptionSplit(np.array([f"img{k}" for k in range(n_images)], dtype=object), images.astype(np.float32),
                        np.array([f"img{k}_{c}" for k in range(n_images) for c in range(caps_per_image)], dtype=object),
                        np.array(cap_image), np.concatenate(chunks), offsets, {})


def subset(d, a, b):
    """Images [a, b) of a toy split with their captions."""
    m = (d.cap_image >= a) & (d.cap_image < b)
    caps = np.flatnonzero(m)
    chunks = [d.frames[d.offsets[c]:d.offsets[c + 1]] for c in caps]
    return CaptionSplit(d.image_ids[a:b], d.images[a:b], d.cap_ids[caps], d.cap_image[caps] - a,
                        np.concatenate(chunks), np.concatenate([[0], np.cumsum([len(c) for c in chunks])]), {})


def write_toy_files(out, splits=(("train", 40), ("dev", 10), ("test", 10)), seed=0, **kw):
    """fbank.h5, regions.h5 (20 rows per image, row 0 the feature), convmap.h5, utterances.tsv."""
    n = sum(s for _, s in splits)
    fc = make_toy(n_images=n, seed=seed, image_kind="fc", **kw)
    cm = make_toy(n_images=n, seed=seed, image_kind="convmap", **kw)
    split_of = np.concatenate([[name] * size for name, size in splits])
    out.mkdir(parents=True, exist_ok=True)
    str_dt = h5py.string_dtype()
    with h5py.File(out / "fbank.h5", "w") as f:
        f.attrs["frame_shift_ms"] = 10.0
        for c, u in enumerate(fc.cap_ids):
            f.create_dataset(f"feats/{u}", data=fc.frames[fc.offsets[c]:fc.offsets[c + 1]])
    with h5py.File(out / "regions.h5", "w") as f:
        f["image_ids"] = np.array(fc.image_ids, dtype=str_dt)
        f["features"] = np.repeat(fc.images[:, None], 20, axis=1)
    with h5py.File(out / "convmap.h5", "w") as f:
        f["image_ids"] = np.array(cm.image_ids, dtype=str_dt)
        f["convmap"] = cm.images.astype(np.float16)
    pd.DataFrame({"utt_id": fc.cap_ids, "image_id": fc.image_ids[fc.cap_image], "split": split_of[fc.cap_image]}
                 ).to_csv(out / "utterances.tsv", sep="\t", index=False)
    return fc, cm
