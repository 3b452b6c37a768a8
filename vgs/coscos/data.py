"""Spoken content-word tokens and image fragments for the coscos model (Synnaeve et al. 2014, §2).

select_tokens: the content words of every aligned caption — not in the stop list and occurring at
least `min_train_count` times in the training transcripts (the paper drops function words and words
seen fewer than twice) — as a table (tokens.tsv: utt_id, index, word, image_id, split, start, end)
and a report that counts every word and caption left out and why.
load_split: one split's tokens as `frames` stacked log-mel frames centred on the word's middle,
flattened (71 × 40 = 2840 floats; vgs/frames.py), and the real region vectors of its images
(regions.h5 rows 0..n_proposals; padding copies of the whole frame are not fragments)."""
import json
import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..frames import cut_windows, word_frames
from ..cache import read_tsv, write_tsv
from ..runtime import atomic_path, open_h5, strings

log = logging.getLogger(__name__)
TOKEN_COLUMNS = ["utt_id", "index", "word", "image_id", "split", "start", "end"]


def read_table(path, required):
    return read_tsv(path, required)


def content_vocabulary(transcripts, stop_words, min_count):
    """{word: count in `transcripts`} of the words kept: not a stop word, count >= min_count."""
    stop = {w.lower() for w in stop_words}
    counts = Counter(w for t in transcripts for w in str(t).lower().split() if w not in stop)
    return {w: c for w, c in counts.items() if c >= min_count}


def select_tokens(utterances_tsv, segments_tsv, fbank_h5, cfg, out_tsv, report_json, system):
    """Write the token table of one system (its aligner's word segments) and its report."""
    utts = read_table(utterances_tsv, ["utt_id", "image_id", "split", "transcript"])
    seg = read_table(segments_tsv, ["utt_id", "index", "word", "start", "end"])
    stop = {w.lower() for w in cfg["stop_words"]}
    vocab = content_vocabulary(utts.loc[utts.split == "train", "transcript"], stop, cfg["min_train_count"])
    corpus_words = {w for t in utts.transcript for w in str(t).lower().split()}
    seg["word"] = seg["word"].str.lower()
    seg = seg.merge(utts[["utt_id", "image_id", "split"]], on="utt_id", how="left")
    unknown = seg.image_id.isna()
    if unknown.any():
        raise ValueError(f"{segments_tsv}: {int(unknown.sum())} words of utterances not in {utterances_tsv}, "
                         f"e.g. {seg.utt_id[unknown].iloc[0]!r}: the segments belong to another corpus")
    with open_h5(fbank_h5) as fb:
        have = set(fb["feats"].keys())
        shift = float(fb.attrs["frame_shift_ms"]) / 1000.0
        n_frames = {u: fb["feats"][u].shape[0] for u in seg.utt_id.unique() if u in have}
    is_stop = seg.word.isin(stop)
    is_rare = ~is_stop & ~seg.word.isin(vocab.keys())
    no_feats = ~seg.utt_id.isin(have)
    keep = ~is_stop & ~is_rare & ~no_feats
    tok = seg[keep].sort_values(["split", "image_id", "utt_id", "index"])[TOKEN_COLUMNS]
    write_tsv(tok, out_tsv)

    _, length = word_frames(tok.start, tok.end, shift)
    per_split = {}
    for split, u in utts.groupby("split"):
        t = tok[tok.split == split]
        aligned = set(seg.utt_id[seg.split == split])
        with_tokens = set(t.utt_id)
        per_split[split] = {
            "images": int(u.image_id.nunique()), "captions": int(len(u)),
            "captions_aligned": int(u.utt_id.isin(aligned).sum()),
            "captions_without_content_word": int((u.utt_id.isin(aligned) & ~u.utt_id.isin(with_tokens)).sum()),
            "images_without_tokens": int((~u.image_id.drop_duplicates().isin(set(t.image_id))).sum()),
            "tokens": int(len(t)), "types": int(t.word.nunique()),
            "tokens_per_caption": round(len(t) / max(1, len(with_tokens)), 2)}
    rep = {"system": system, "tokens": int(len(tok)), "types": int(tok.word.nunique()),
           "frames": cfg["frames"], "token_dim": cfg["frames"] * int(_n_mels(fbank_h5)),
           "vocabulary_train": len(vocab), "per_split": per_split,
           "dropped_words": {"stop_word": int(is_stop.sum()), "rare_in_train": int(is_rare.sum()),
                             "rare_types": int(seg.word[is_rare].nunique()),
                             "utterance_without_features": int((no_feats & ~is_stop & ~is_rare).sum())},
           "stop_words_unused": sorted(stop - corpus_words),
           "tokens_longer_than_window": int((length > cfg["frames"]).sum()),
           "settings": {k: cfg[k] for k in ("frames", "min_train_count")}}
    log.info("%s: %d tokens of %d types (%s); dropped %s; %d stop-list entries not in the corpus (unused)",
             system, rep["tokens"], rep["types"],
             ", ".join(f"{s} {v['tokens']}" for s, v in per_split.items()), rep["dropped_words"],
             len(rep["stop_words_unused"]))
    with atomic_path(report_json) as tmp:
        tmp.write_text(json.dumps(rep, indent=1) + "\n")
    return rep


def _n_mels(fbank_h5):
    with open_h5(fbank_h5) as fb:
        return int(fb.attrs["num_mel_bins"])


@dataclass
class Split:
    """One split: tokens sorted by image, fragments of every image of the split."""
    image_ids: np.ndarray   # (K,) str
    tokens: np.ndarray      # (N, frames * n_mels) float32
    tok_image: np.ndarray   # (N,) image index, non-decreasing
    tok_word: np.ndarray    # (N,) str (ranking by type and reports only; never model input)
    frags: np.ndarray       # (Fr, D) float32 real region vectors
    frag_image: np.ndarray  # (Fr,) image index, non-decreasing

    def offsets(self, which):
        """CSR offsets of tokens ('tok') or fragments ('frag') per image."""
        idx = self.tok_image if which == "tok" else self.frag_image
        return np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=len(self.image_ids)))])

    def sizes(self):
        return {"images": int(len(self.image_ids)), "tokens": int(len(self.tok_image)),
                "types": int(len(set(self.tok_word))), "fragments": int(len(self.frag_image)),
                "images_with_tokens": int(len(np.unique(self.tok_image)))}


def load_split(tokens_tsv, fbank_h5, regions_h5, utterances_tsv, split, frames):
    utts = read_table(utterances_tsv, ["utt_id", "image_id", "split"])
    image_ids = np.array(sorted(set(utts.image_id[utts.split == split])), dtype=object)
    if not len(image_ids):
        raise ValueError(f"{utterances_tsv}: no utterances in split {split!r}")
    frags, frag_image, image_ids = _fragments(regions_h5, image_ids, split)
    index = {i: k for k, i in enumerate(image_ids)}
    tok = read_table(tokens_tsv, TOKEN_COLUMNS)
    tok = tok[(tok.split == split) & tok.image_id.isin(index)]
    tok = tok.assign(img=tok.image_id.map(index)).sort_values(["img", "utt_id", "index"]).reset_index(drop=True)
    with open_h5(fbank_h5) as fb:
        shift = float(fb.attrs["frame_shift_ms"]) / 1000.0
        n_mels = int(fb.attrs["num_mel_bins"])
        X = np.empty((len(tok), frames * n_mels), np.float32)
        for utt, rows in tqdm(tok.groupby("utt_id", sort=False).indices.items(), desc=f"tokens[{split}]",
                              mininterval=5):
            if utt not in fb["feats"]:
                raise ValueError(f"{fbank_h5}: no features for {utt!r}, listed in {tokens_tsv}: "
                                 f"rebuild the tokens (snakemake --forcerun {tokens_tsv})")
            f = fb["feats"][utt][()]
            s, n = word_frames(tok.start.to_numpy()[rows], tok.end.to_numpy()[rows], shift, len(f))
            X[rows] = cut_windows(f, s, n, frames).reshape(len(rows), -1)
    if not np.isfinite(X).all():
        raise ValueError(f"{fbank_h5}: non-finite features in {split} tokens")
    d = Split(image_ids, X, tok.img.to_numpy(np.int64), tok.word.to_numpy(dtype=object), frags, frag_image)
    log.info("split %s: %s", split, d.sizes())
    return d


def _fragments(regions_h5, image_ids, split):
    """Real region vectors (row 0, the whole frame, and n_proposals detections) of `image_ids`;
    images without region vectors are a logged skip."""
    with open_h5(regions_h5) as f:
        for key in ("image_ids", "features"):
            if key not in f:
                raise ValueError(f"{regions_h5}: missing dataset {key!r}")
        row_of = {i: r for r, i in enumerate(strings(f["image_ids"][:]))}
        absent = [i for i in image_ids if i not in row_of]
        if absent:
            log.warning("%s: %d %s images have no region vectors (skipped with their tokens), e.g. %s",
                        regions_h5, len(absent), split, absent[:3])
            image_ids = np.array([i for i in image_ids if i in row_of], dtype=object)
        rows = np.array([row_of[i] for i in image_ids], dtype=np.int64)
        order = np.argsort(rows)  # h5py wants increasing indices
        feats = np.empty((len(rows),) + f["features"].shape[1:], np.float32)
        feats[order] = f["features"][rows[order]]
        R = feats.shape[1]
        n = np.full(len(rows), R, np.int64)
        if "n_proposals" in f:
            n[order] = np.minimum(f["n_proposals"][:][rows[order]].astype(np.int64) + 1, R)
    if not np.isfinite(feats).all():
        raise ValueError(f"{regions_h5}: non-finite region features in split {split!r}")
    real = np.arange(R)[None, :] < n[:, None]
    return feats[real], np.nonzero(real)[0], image_ids
