"""Word vectors for every aligned caption word: the trained net's 1024-d penultimate
activations (see models.WordNet.embed).

Layout of word_vectors.h5 (rows grouped by caption, words in spoken order):
  vectors     (W, 1024) float32   embedding of each caption word
  words, utt_ids, index, start, end (W,)   copied from caption_windows.h5
  source_row  (W,) int64          row of the same word in caption_windows.h5
  utterances  (U,) utf-8          caption ids in row order (sorted)
  utt_offsets (U+1,) int64        caption u's words are rows utt_offsets[u]:utt_offsets[u+1]
  attrs: model, arch, classes, embedding, windows_per_s
"""
import json
import logging
import time

import h5py
import numpy as np
import torch
from tqdm import tqdm

from ..runtime import atomic_path, open_h5, torch_device
from .data import META, read_meta
from .models import load_model

log = logging.getLogger(__name__)


def caption_order(utt_ids, index):
    """Rows sorted by (utt_id, index) and the per-caption offsets into that order."""
    utt = np.asarray(utt_ids).astype(str)
    order = np.lexsort((np.asarray(index), utt))
    uniq, first = np.unique(utt[order], return_index=True)
    return order, uniq, np.append(first, len(order)).astype(np.int64)


@torch.inference_mode()
def embed_windows(model, path, rows, batch_size=512, out=None):
    """Embed windows of `path` in the given row order, reading in batches (on the model's device)
    and writing each batch to `out` (an array or HDF5 dataset of (len(rows), 1024); default: a
    new array), so that memory stays one batch however many words there are."""
    dev = next(model.parameters()).device
    out = np.empty((len(rows), 1024), np.float32) if out is None else out
    with open_h5(path) as f:
        ds = f["windows"]
        for i in tqdm(range(0, len(rows), batch_size), desc="word vectors", mininterval=5):
            r = rows[i:i + batch_size]
            if (np.diff(r) == 1).all():  # the usual case: file already in caption order
                x = np.asarray(ds[r[0]:r[-1] + 1], np.float32)
            else:
                srt = np.argsort(r)
                x = np.empty((len(r), *ds.shape[1:]), np.float32)
                x[srt] = ds[r[srt]]  # h5py wants increasing indices
            if not np.isfinite(x).all():
                raise ValueError(f"{path}: NaN/inf in caption windows near row {int(r[0])}")
            out[i:i + len(r)] = model.embed(torch.from_numpy(x).to(dev)).cpu().numpy()
    return out


def extract_vectors(model_path, windows_path, out_path, report_path=None, batch_size=512, threads=1,
                    device=None):
    torch.set_num_threads(max(1, int(threads)))
    model, ck = load_model(model_path)
    model.to(torch.device(device) if device is not None else torch_device())
    meta = read_meta(windows_path)
    with open_h5(windows_path) as f:
        shape = tuple(f["windows"].shape[1:])
    if shape != model.window_shape:
        raise ValueError(f"{windows_path}: windows of {shape} (frames, dim), but {model_path} was trained on "
                         f"{model.window_shape}: rebuild both from the same speech.features")
    order, uniq, offsets = caption_order(meta["utt_ids"], meta["index"])
    known = set(ck["classes"])
    in_vocab = np.array([w in known for w in meta["words"][order]], bool)
    str_dt = h5py.string_dtype()
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        vecs = f.create_dataset("vectors", (len(order), 1024), np.float32,
                                chunks=(min(len(order), 1024) or 1, 1024))
        t0 = time.perf_counter()
        embed_windows(model, windows_path, order, batch_size, out=vecs)
        rate = len(order) / max(time.perf_counter() - t0, 1e-9)
        for k in META:
            v = meta[k][order]
            if v.dtype == object:
                f.create_dataset(k, data=v, dtype=str_dt)
            else:
                f[k] = v
        f["source_row"] = order.astype(np.int64)
        f.create_dataset("utterances", data=uniq.astype(object), dtype=str_dt)
        f["utt_offsets"] = offsets
        f.attrs.update(model=str(model_path), arch=ck["arch"], classes=len(ck["classes"]),
                       embedding="penultimate FC (1024) after ReLU, eval mode", windows_per_s=rate)
    report = {"words": len(order), "captions": len(uniq), "arch": ck["arch"],
              "in_pretraining_vocab_tokens": float(in_vocab.mean()) if len(in_vocab) else 0.0,
              "windows_per_s": rate}
    log.info("%d word vectors for %d captions from %s (%.0f windows/s); %.1f%% of tokens in the "
             "pretraining vocabulary", len(order), len(uniq), ck["arch"], rate,
             100 * report["in_pretraining_vocab_tokens"])
    if report_path:
        with atomic_path(report_path) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    return report
