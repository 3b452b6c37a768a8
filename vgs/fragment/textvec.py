"""The "text + word vec" row: word vectors learned offline from the training captions
(PPMI co-occurrence + truncated SVD, standing in for the paper's 200-d vectors of [22]),
written in the speech stage's word_vectors.h5 layout so the same model and loaders apply.

The transcripts are files (utt_id, split, transcript): the vectors are fit on one file's train
split and emitted for every row of another, so the same rule serves ground truth (the manifest)
and ASR hypotheses (the cascade rows, results/asr/<lm>/hypotheses.tsv)."""
import logging

import h5py
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import TruncatedSVD

from vgs.cache import read_tsv
from vgs.runtime import atomic_path

log = logging.getLogger(__name__)


def fit_word_vectors(captions, dim=200, window=2, min_count=1, cds=0.75, seed=0):
    """PPMI (context-distribution smoothing `cds`, Levy et al. 2015) + truncated SVD.

    window: co-occurrence window in words; 0 = the whole caption is the context.
    Returns (vocab list, (V, d) float32 vectors); d = min(dim, V - 1)."""
    toks = [c.split() for c in captions]
    counts = pd.Series([w for t in toks for w in t]).value_counts()
    vocab = sorted(counts[counts >= min_count].index)
    wid = {w: i for i, w in enumerate(vocab)}
    ids, cap = [], []
    for j, t in enumerate(toks):
        for w in t:
            ids.append(wid.get(w, -1))
            cap.append(j)
    ids, cap = np.array(ids), np.array(cap)
    V = len(vocab)
    rows, cols = [], []
    # pairs (i, i+d) inside one caption for all offsets d: vectorised per offset
    max_d = window if window > 0 else (np.bincount(cap).max() if len(cap) else 1)
    for d in range(1, int(max_d) + 1):
        ok = (cap[d:] == cap[:-d]) & (ids[d:] >= 0) & (ids[:-d] >= 0)
        a, b = ids[:-d][ok], ids[d:][ok]
        rows += [a, b]
        cols += [b, a]
    r, c = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, int), np.zeros(0, int))
    co = sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(V, V)).tocsr()
    co.sum_duplicates()
    total = co.sum()
    pw = np.asarray(co.sum(1)).ravel() / total
    pc = np.asarray(co.sum(0)).ravel() ** cds
    pc /= pc.sum()
    co = co.tocoo()
    pmi = np.log(co.data / total / (pw[co.row] * pc[co.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (co.row[keep], co.col[keep])), shape=(V, V))
    d = int(min(dim, V - 1))
    if d < dim:
        log.info("vocabulary of %d words: SVD dimension %d instead of %d", V, d, dim)
    svd = TruncatedSVD(n_components=d, random_state=seed, algorithm="arpack" if d < V - 1 else "randomized")
    u = svd.fit_transform(ppmi)  # U * Sigma
    vec = u / np.sqrt(svd.singular_values_)[None, :]  # U * Sigma^0.5 (symmetric weighting)
    return vocab, vec.astype(np.float32)


def read_transcripts(path):
    return read_tsv(path, ["utt_id", "split", "transcript"], unique="utt_id")


def write_text_word_vectors(fit_tsv, emit_tsv, out_h5, cfg):
    """Fit on the train split's transcripts of `fit_tsv`; emit vectors for the words of every row
    of `emit_tsv`.  Out-of-vocabulary words (unseen in the fit file's train split) are skipped and
    counted; a row without words (an empty ASR hypothesis) gets no vectors."""
    train = read_transcripts(fit_tsv)
    train = train.loc[train["split"] == "train", "transcript"].tolist()
    if not any(t.split() for t in train):
        raise ValueError(f"{fit_tsv}: no train-split transcripts to learn word vectors from")
    u = read_transcripts(emit_tsv)
    vocab, vec = fit_word_vectors(train, cfg["dim"], cfg["window"], cfg["min_count"], seed=cfg["seed"])
    wid = {w: i for i, w in enumerate(vocab)}
    utt, words, index = [], [], []
    for uid, tr in zip(u["utt_id"], u["transcript"]):
        for n, w in enumerate(tr.split()):
            utt.append(uid)
            words.append(w)
            index.append(n)
    words = np.array(words, dtype=object)
    ok = np.array([w in wid for w in words], dtype=bool)
    log.info("text word vectors: vocab %d, dim %d, %d word tokens, %d OOV skipped (%.2f%%)",
             len(vocab), vec.shape[1], len(words), int((~ok).sum()), 100 * (~ok).mean() if len(ok) else 0)
    s = h5py.string_dtype()
    with atomic_path(out_h5) as tmp:
        with h5py.File(tmp, "w") as f:
            f["vectors"] = vec[[wid[w] for w in words[ok]]].reshape(-1, vec.shape[1])
            f["words"] = np.array(words[ok], dtype=s)
            f["utt_ids"] = np.array(np.array(utt, dtype=object)[ok], dtype=s)
            f["index"] = np.array(index)[ok]
            f["start"] = np.full(int(ok.sum()), np.nan)  # no times: text has no audio
            f["end"] = np.full(int(ok.sum()), np.nan)
            f.attrs["source"] = f"PPMI+SVD on the train transcripts of {fit_tsv}; words of {emit_tsv}"
    return {"vocab": len(vocab), "dim": int(vec.shape[1]), "tokens": int(len(words)), "oov": int((~ok).sum()),
            "rows_without_words": int(sum(not t.split() for t in u["transcript"]))}
