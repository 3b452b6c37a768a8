"""HDF5 region store: resumable, chunked, compressed, published atomically.

Layout of results/vision/regions.h5 (N images, R = 20 regions, D = 1280, K = 5):
  image_ids    (N,)        utf-8 str   manifest image_id, in manifest order (skipped images absent;
                                       rows kept by a resume come first)
  features     (N, R, D)   float32     pooled last-conv-stage feature of each region
  boxes        (N, R, 4)   float32     x0, y0, x1, y1 in pixels of the original image (x1, y1 exclusive)
  scores       (N, R)      float32     max ImageNet class probability of the region
  top_classes  (N, R, K)   int16       ImageNet-1k class ids, most probable first
  top_probs    (N, R, K)   float32     their softmax probabilities
  n_proposals  (N,)        int16       real detections in rows 1..n (row 0 = whole frame; rows after
                                       n are copies of row 0)
  n_raw_boxes  (N,)        int32       selective-search boxes before filtering
  n_candidates (N,)        int32       candidates scored (after size filter, dedup and cap)
  sources      (N,)        utf-8 str   the image file each row was computed from: path, size, mtime
  attrs: encoder, input_size, feature_dim, regions, config (JSON of every vision param), layout,
         complete (True only in the published file), n_images.

While running, rows are appended to `<path>.partial` in chunks; `n_done` (an attribute updated
after each flushed chunk) is the number of rows that are complete, so a crash mid-chunk loses only
that chunk.  A rerun with the same config resumes from there, keeping only the rows whose image is
still listed with the same file (`sources`); any other config, or an unreadable partial file,
starts afresh."""
import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from ..runtime import open_h5, open_partial

log = logging.getLogger(__name__)

FIELDS = {  # name -> (per-image shape given R, D, K), dtype
    "features": (lambda R, D, K: (R, D), np.float32),
    "boxes": (lambda R, D, K: (R, 4), np.float32),
    "scores": (lambda R, D, K: (R,), np.float32),
    "top_classes": (lambda R, D, K: (R, K), np.int16),
    "top_probs": (lambda R, D, K: (R, K), np.float32),
    "n_proposals": (lambda R, D, K: (), np.int16),
    "n_raw_boxes": (lambda R, D, K: (), np.int32),
    "n_candidates": (lambda R, D, K: (), np.int32),
}


class RegionWriter:
    """`sources`: {image_id: file signature (vgs.runtime.file_signature)} of the images to be
    written; a resumed row is kept only if its image still has the same signature."""

    def __init__(self, path, attrs, regions, dim, top_k, chunk=32, compression=4, sources=None):
        self.path, self.partial = Path(path), Path(f"{path}.partial")
        self.attrs, self.chunk, self.buf = dict(attrs), int(chunk), []
        self.sources = dict(sources or {})
        self.shapes = {k: (f(regions, dim, top_k), dt) for k, (f, dt) in FIELDS.items()}
        self.h5 = self._open_or_resume(compression)
        self.done_ids = set(self.h5["image_ids"].asstr()[:])

    def _open_or_resume(self, level):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            h5 = open_partial(self.partial)
            if h5.attrs.get("config") == self.attrs["config"] and all(k in h5 for k in ["sources", *self.shapes]):
                self._keep_current_rows(h5)
                return h5
            if "image_ids" in h5:
                log.info("%s was made with another config; starting afresh", self.partial)
            h5.close()
            self.partial.unlink()
        h5 = h5py.File(self.partial, "w")
        opts = dict(compression="gzip", compression_opts=level, shuffle=True) if level else {}
        h5.create_dataset("image_ids", (0,), h5py.string_dtype(), maxshape=(None,), chunks=(self.chunk,))
        h5.create_dataset("sources", (0,), h5py.string_dtype(), maxshape=(None,), chunks=(self.chunk,))
        for name, (shape, dt) in self.shapes.items():
            h5.create_dataset(name, (0, *shape), dt, maxshape=(None, *shape), chunks=(self.chunk, *shape), **opts)
        for k, v in self.attrs.items():
            h5.attrs[k] = v
        h5.attrs["complete"] = False
        h5.attrs["n_done"] = 0
        return h5

    def _keep_current_rows(self, h5):
        """Resume: keep the finished rows (n_done) whose image is still listed with the same file,
        moved to the front in order; the rest (an unfinished chunk, images no longer listed or
        changed) are dropped."""
        n = int(h5.attrs["n_done"])
        ids, old = h5["image_ids"].asstr()[:n], h5["sources"].asstr()[:n]
        keep = np.flatnonzero([self.sources.get(i) == s for i, s in zip(ids, old)])
        if len(keep) < n:
            log.info("%s: dropping %d of %d finished rows (image no longer listed or its file changed)",
                     self.partial, n - len(keep), n)
        for name in ["image_ids", "sources", *self.shapes]:
            d = h5[name]
            if len(keep) < n:  # compact in place, front to back: a row only moves down
                for s in range(0, len(keep), self.chunk):
                    part = keep[s:s + self.chunk]
                    d[s:s + len(part)] = d[part]
            d.resize(len(keep), axis=0)
        h5.attrs["n_done"] = len(keep)
        log.info("resuming %s: %d images already done", self.partial, len(keep))

    def add(self, image_id, res):
        self.buf.append((image_id, res))
        if len(self.buf) >= self.chunk:
            self.flush()

    def flush(self):
        if not self.buf:
            return
        n0, m = self.h5["image_ids"].shape[0], len(self.buf)
        self.h5["image_ids"].resize(n0 + m, axis=0)
        self.h5["image_ids"][n0:] = [i for i, _ in self.buf]
        self.h5["sources"].resize(n0 + m, axis=0)
        self.h5["sources"][n0:] = [self.sources.get(i, "") for i, _ in self.buf]
        for name in self.shapes:
            d = self.h5[name]
            d.resize(n0 + m, axis=0)
            d[n0:] = np.stack([r[name] for _, r in self.buf])
        self.h5.attrs["n_done"] = n0 + m  # only now do these rows count as written
        self.h5.flush()
        self.buf = []

    def publish(self, extra_attrs=None):
        """Flush, mark complete and rename onto the final path (atomic on one file system)."""
        self.flush()
        for k, v in (extra_attrs or {}).items():
            self.h5.attrs[k] = v
        self.h5.attrs["n_images"] = self.h5["image_ids"].shape[0]
        self.h5.attrs["complete"] = True
        self.h5.close()
        os.replace(self.partial, self.path)

    def close(self):
        """Leave the partial file for a resume (called on failure)."""
        if self.h5.id.valid:
            self.flush()
            self.h5.close()


def read_regions(path, fields=None):
    """Load a published region store into a dict of numpy arrays (+ 'attrs')."""
    with open_h5(path) as h5:
        if not h5.attrs.get("complete", False):
            raise ValueError(f"{path}: region store is incomplete (no 'complete' attribute)")
        out = {"image_ids": h5["image_ids"].asstr()[:]}
        if "sources" in h5:
            out["sources"] = h5["sources"].asstr()[:]
        for name in fields or [f for f in FIELDS if f in h5]:  # (older stores lack the counts)
            out[name] = h5[name][:]
        out["attrs"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
        out["config"] = json.loads(out["attrs"]["config"])
    return out
