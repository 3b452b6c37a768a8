"""Word-window files (results/wordcorpus/windows.h5, results/speech/*/caption_windows.h5):
reading, vocabulary selection and the train/test split for pretraining."""
import logging

import numpy as np

from ..runtime import open_h5, strings

log = logging.getLogger(__name__)
META = ("words", "utt_ids", "index", "start", "end")


def read_meta(path, extra=()):
    """The per-window label datasets (not the windows), checked for equal length."""
    with open_h5(path) as f:
        missing = [k for k in ("windows", *META, *extra) if k not in f]
        if missing:
            raise ValueError(f"{path}: missing dataset(s) {missing}")
        n, shape = len(f["windows"]), f["windows"].shape
        if len(shape) != 3 or min(shape[1:]) < 1:
            raise ValueError(f"{path}: windows have shape {shape}, expected (W, frames, dim)")
        meta = {}
        for k in (*META, *extra):
            meta[k] = strings(f[k][()]) if f[k].dtype.kind in "OSU" else f[k][()]
            if len(meta[k]) != n:
                raise ValueError(f"{path}: dataset {k!r} has {len(meta[k])} rows, windows {n}")
    return meta


def read_windows(path, rows=None):
    """float32 windows (optionally a sorted row subset), checked finite."""
    with open_h5(path) as f:
        x = f["windows"][()]  # one contiguous read (h5py point selection is slow); may be float16
    x = np.asarray(x if rows is None else x[np.sort(rows)], dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} window(s) contain NaN/inf (first row {int(np.flatnonzero(bad)[0])})")
    return x


def split_tokens(words, speakers, min_tokens, test_fraction, how, seed):
    """Select the pretraining vocabulary and split tokens into train/test row indices.

    how='stratified': every word with >= min_tokens tokens, each word's tokens split
    test_fraction/rest (at least one token on each side), as the paper's 80/20 WSJ split.
    how='speaker': a seeded test_fraction of speakers is held out entirely (a harder,
    speaker-independent test); words are those with >= min_tokens tokens overall and at least
    one training token; test tokens of other words are dropped (counted in the log).
    Returns (classes sorted, labels per row (-1 = unused), train rows, test rows)."""
    words = np.asarray(words, dtype=object)
    types, inverse, counts = np.unique(words, return_inverse=True, return_counts=True)
    keep = counts >= min_tokens
    log.info("vocabulary: %d types, %d with >= %d tokens (%d of %d tokens)",
             len(types), keep.sum(), min_tokens, counts[keep].sum(), len(words))
    if keep.sum() < 2:
        raise ValueError(f"only {keep.sum()} word(s) have >= {min_tokens} tokens; need >= 2 classes")
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(keep[inverse])
    is_test = np.zeros(len(words), bool)
    if how == "stratified":
        # a random key per row; within each word the lowest keys go to test
        key = rng.random(len(words))
        order = np.lexsort((key[rows], inverse[rows]))
        r = rows[order]
        w = inverse[r]
        first = np.searchsorted(w, w, side="left")
        rank = np.arange(len(r)) - first
        n_test = np.clip(np.round(counts[w] * test_fraction), 1, counts[w] - 1)
        is_test[r[rank < n_test]] = True
    elif how == "speaker":
        if speakers is None:
            raise ValueError("split 'speaker' needs a 'speakers' dataset in the word windows")
        spk = np.unique(speakers)
        if len(spk) < 2:
            raise ValueError(f"split 'speaker' needs >= 2 speakers, found {len(spk)}")
        n_test = min(len(spk) - 1, max(1, round(len(spk) * test_fraction)))
        test_spk = rng.choice(spk, n_test, replace=False)
        is_test[rows] = np.isin(np.asarray(speakers)[rows], test_spk)
        in_train = np.zeros(len(types), bool)
        in_train[inverse[rows[~is_test[rows]]]] = True
        dropped = is_test & ~in_train[inverse]
        if dropped.any():
            log.warning("speaker split: dropped %d test tokens of %d words with no training token",
                        dropped.sum(), len(np.unique(inverse[dropped])))
        keep &= in_train
        rows = np.flatnonzero(keep[inverse])
    else:
        raise ValueError(f"unknown split {how!r}; use 'stratified' or 'speaker'")
    classes = types[keep]
    label_of_type = np.full(len(types), -1)
    label_of_type[keep] = np.arange(keep.sum())
    labels = label_of_type[inverse]
    train = np.flatnonzero((labels >= 0) & ~is_test)
    test = np.flatnonzero((labels >= 0) & is_test)
    log.info("%d classes; %d train / %d test tokens (%s split)", len(classes), len(train), len(test), how)
    return list(classes), labels, train, test
