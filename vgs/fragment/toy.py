"""A learnable toy corpus with known answers: images are sets of class prototypes plus noise,
captions are noisy word vectors of the same classes plus filler words. Used by tests and the
scale benchmark; also written as pipeline-format files to exercise the loaders."""
import h5py
import numpy as np
import pandas as pd

from vgs.fragment.data import SplitData


def make_toy(n_images=60, n_classes=8, caps_per_image=5, regions=20, image_dim=32, word_dim=24,
             noise=0.5, fillers=3, seed=0, image_size=100):
    rng = np.random.default_rng(seed)
    p_img = rng.normal(size=(n_classes, image_dim)) * 2
    p_word = rng.normal(size=(n_classes, word_dim))
    p_fill = rng.normal(size=(fillers, word_dim))
    # features look like CNN activations: non-negative-ish with a large common offset
    feats = 3.0 + rng.normal(size=(n_images, regions, image_dim)) * noise
    boxes = np.zeros((n_images, regions, 4), np.float32)
    xy = rng.uniform(0, image_size * 0.8, size=(n_images, regions, 2))
    boxes[..., :2], boxes[..., 2:] = xy, xy + image_size * 0.15  # background: small boxes
    boxes[:, -1] = [0, 0, image_size, image_size]  # last region: whole frame
    gt, objs = [], []
    for k in range(n_images):
        cls = rng.choice(n_classes, size=rng.integers(1, 4), replace=False)
        objs.append(cls)
        for j, c in enumerate(cls):
            r = slice(3 * j, 3 * j + 3)  # three proposals per object
            feats[k, r] += p_img[c]
            x0, y0 = rng.uniform(0, image_size * 0.5, 2)
            box = np.array([x0, y0, x0 + image_size * 0.4, y0 + image_size * 0.4])
            boxes[k, r] = box + rng.uniform(-3, 3, size=(3, 4))
            gt.append((f"img{k}", j, f"cls{c}", *box))
        feats[k, -1] += p_img[cls].mean(0)
    cap_ids, cap_image, words, seg, text = [], [], [], [], []
    for k in range(n_images):
        for n in range(caps_per_image):
            c_idx = len(cap_ids)
            cap_ids.append(f"img{k}_{n}")
            cap_image.append(k)
            toks = [("cls", c) for c in objs[k]] + [("fill", f) for f in rng.integers(0, fillers, rng.integers(1, 4))]
            for kind, i in [toks[j] for j in rng.permutation(len(toks))]:
                base = p_word[i] if kind == "cls" else p_fill[i]
                words.append(base + rng.normal(size=word_dim) * noise * 0.5)
                seg.append(c_idx)
                text.append(f"cls{i}" if kind == "cls" else f"fill{i}")
    data = SplitData(np.array([f"img{k}" for k in range(n_images)], dtype=object), feats.astype(np.float32),
                     boxes, np.array(cap_ids, dtype=object), np.array(cap_image), np.array(words, np.float32),
                     np.array(seg), np.array(text, dtype=object))
    gt = pd.DataFrame(gt, columns=["image_id", "object", "category", "x0", "y0", "x1", "y1"])
    return data, gt


def write_toy_files(out, splits=(("train", 40), ("dev", 10), ("test", 10)), seed=0, **kw):
    """Pipeline-format files (regions.h5, word_vectors.h5, utterances.tsv, images.tsv, boxes.tsv)."""
    n = sum(s for _, s in splits)
    data, gt = make_toy(n_images=n, seed=seed, **kw)
    split_of = np.concatenate([[name] * size for name, size in splits])
    out.mkdir(parents=True, exist_ok=True)
    str_dt = h5py.string_dtype()
    with h5py.File(out / "regions.h5", "w") as f:
        f["image_ids"] = np.array(data.image_ids, dtype=str_dt)
        f["features"] = data.feats
        f["boxes"] = data.boxes
        f["scores"] = np.ones(data.feats.shape[:2], np.float32)
    index = np.concatenate([np.arange(c) for c in np.bincount(data.seg)])
    with h5py.File(out / "word_vectors.h5", "w") as f:
        f["vectors"] = data.words
        f["words"] = np.array(data.word_text, dtype=str_dt)
        f["utt_ids"] = np.array(data.cap_ids[data.seg], dtype=str_dt)
        f["index"] = index
        f["start"] = index * 0.3
        f["end"] = index * 0.3 + 0.25
    pd.DataFrame({"utt_id": data.cap_ids, "image_id": data.image_ids[data.cap_image],
                  "n": [int(c.rsplit("_", 1)[1]) for c in data.cap_ids], "wav": "",
                  "speaker": "s0", "split": split_of[data.cap_image], "duration": 1.0,
                  "sample_rate": 16000, "channels": 1,
                  "transcript": [" ".join(data.word_text[data.seg == c]) for c in range(len(data.cap_ids))]}
                 ).to_csv(out / "utterances.tsv", sep="\t", index=False)
    pd.DataFrame({"image_id": data.image_ids, "path": "", "split": split_of, "width": 100, "height": 100}
                 ).to_csv(out / "images.tsv", sep="\t", index=False)
    gt.to_csv(out / "boxes.tsv", sep="\t", index=False)
    return data, gt
