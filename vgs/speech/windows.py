"""Fixed-width word windows: each word's frames centred in `width` frames (100 = 1 s), padded or
truncated equally on both sides (vgs/frames.py, shared with the coscos stage).

The configured `frames` count 10 ms frames; features with another frame shift (ssl: 20 ms) get the
same duration, width = round(frames * 10 / frame_shift_ms), and their own dimension D.

Output HDF5 (caption_windows.h5 / wordcorpus windows.h5), W windows:
  windows (W, width, D) float32 [or float16]   chunked, optionally gzip-compressed
  words, utt_ids (W,) utf-8;  index (W,) int32 position in the caption / CTM order
  start, end (W,) float64 seconds;  frames (W,) int32 word length before padding/truncation
  speakers (W,) utf-8   (word corpus only)
attrs: width, n_mels (= D), frame_shift_ms, dtype, padding, aligner/source, n_longer_than_window."""
import json
import logging
import os
import time

import h5py
import numpy as np
from tqdm import tqdm

from ..frames import cut_windows, word_frames
from ..cache import read_tsv
from ..runtime import atomic_path, open_h5

log = logging.getLogger(__name__)


def feature_dim(h5, path):
    """D of a features file: its `dim` attribute, else its first utterance's frames."""
    if "dim" in h5.attrs:
        return int(h5.attrs["dim"])
    for k in h5["feats"]:
        return int(h5["feats"][k].shape[1])
    raise ValueError(f"{path}: no features stored")


def build_windows(fbank_h5, segments, out_h5, report_json, cfg, attrs=None, extra=None,
                  desc="windows"):
    """Windows for every row of `segments` (utt_id, index, word, start, end [, speaker]).

    Words whose utterance has no features (skipped bad audio) are a counted, logged skip."""
    t0 = time.time()
    dtype = np.dtype(cfg["dtype"])
    seg = segments.sort_values(["utt_id", "index"]).reset_index(drop=True)
    with open_h5(fbank_h5) as fb:
        have = set(fb["feats"].keys())
        n_mels = feature_dim(fb, fbank_h5)
        shift_ms = float(fb.attrs["frame_shift_ms"])  # the features' own frame shift
        shift = shift_ms / 1000.0
        width = max(1, int(round(cfg["frames"] * 10.0 / shift_ms)))
        missing = ~seg.utt_id.isin(have)
        skipped_utts = sorted(seg.utt_id[missing].unique())
        if skipped_utts:
            log.warning("%d words of %d utterances without features skipped: %s", missing.sum(),
                        len(skipped_utts), skipped_utts[:20])
        seg = seg[~missing].reset_index(drop=True)
        t0s, t1s = seg.start.to_numpy(), seg.end.to_numpy()
        s, n = word_frames(t0s, t1s, shift)
        e = s + n
        W = len(seg)
        comp = {} if cfg["compression"] == "none" else {"compression": cfg["compression"],
                                                          "shuffle": True}
        str_t = h5py.string_dtype("utf-8")
        with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
            rows_per_chunk = max(1, min(64, 2 ** 20 // (width * n_mels * dtype.itemsize)))  # <= 1 MB
            ds = h5.create_dataset("windows", (W, width, n_mels), dtype=dtype,
                                   chunks=(min(max(W, 1), rows_per_chunk), width, n_mels), **comp)
            groups = seg.groupby("utt_id", sort=False).indices
            for utt, rows in tqdm(groups.items(), desc=desc, mininterval=5):
                f = fb["feats"][utt][()]
                w = cut_windows(f, *word_frames(t0s[rows], t1s[rows], shift, len(f)), width)
                ds[rows[0]:rows[-1] + 1] = w.astype(dtype)  # rows are contiguous (sorted)
            h5.create_dataset("words", data=seg.word.astype(str).to_numpy(dtype=object), dtype=str_t)
            h5.create_dataset("utt_ids", data=seg.utt_id.astype(str).to_numpy(dtype=object),
                              dtype=str_t)
            h5.create_dataset("index", data=seg["index"].to_numpy(np.int32))
            h5.create_dataset("start", data=seg.start.to_numpy(np.float64))
            h5.create_dataset("end", data=seg.end.to_numpy(np.float64))
            h5.create_dataset("frames", data=(e - s).astype(np.int32))
            for name, col in (extra or {}).items():
                h5.create_dataset(name, data=seg[col].astype(str).to_numpy(dtype=object), dtype=str_t)
            n_long = int(((e - s) > width).sum())
            h5.attrs.update(width=width, n_mels=n_mels, frame_shift_ms=shift_ms,
                            dtype=dtype.name, n_longer_than_window=n_long,
                            padding="zeros equally both sides; odd remainder after",
                            truncation="equally both sides; odd remainder at the end",
                            **(attrs or {}))
    dur = (seg.end - seg.start).to_numpy()
    wall = time.time() - t0
    report = {"windows": W, "utterances": len(groups) if W else 0,
              "skipped_words_no_features": int(missing.sum()), "skipped_utterances": skipped_utts,
              "longer_than_window": n_long, "fraction_longer_than_window": round(n_long / max(W, 1), 5),
              "paper_fraction_longer": 0.001,
              "word_duration_s": {"mean": round(float(dur.mean()), 3) if W else None,
                                  "p99": round(float(np.percentile(dur, 99)), 3) if W else None,
                                  "max": round(float(dur.max()), 3) if W else None},
              "vocabulary": int(seg.word.nunique()), "h5_bytes": os.path.getsize(out_h5),
              "wall_seconds": round(wall, 2), "windows_per_second": round(W / max(wall, 1e-9), 1),
              "settings": cfg, **(attrs or {})}
    log.info("%d windows (%d words > %d frames = %.3f%%), %.1f MB, %.1f s (%.0f windows/s)", W,
             n_long, width, 100 * report["fraction_longer_than_window"], report["h5_bytes"] / 1e6,
             wall, report["windows_per_second"])
    with atomic_path(report_json) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report


def read_segments(path):
    """An aligner's word_segments.tsv (utt_id, index, word, start, end)."""
    return read_tsv(path, ["utt_id", "index", "word", "start", "end"], unique=["utt_id", "index"])


def caption_windows(fbank_h5, segments_tsv, out_h5, report_json, cfg, aligner):
    seg = read_segments(segments_tsv)
    return build_windows(fbank_h5, seg, out_h5, report_json, cfg, attrs={"aligner": aligner},
                         desc=f"windows[{aligner}]")
