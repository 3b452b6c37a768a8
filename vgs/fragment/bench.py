"""Scale check: scoring a (images x captions) problem vs. one GEMM of the same size."""
import logging
import time

import numpy as np
import torch

from vgs import retrieval
from vgs.fragment.model import FragmentModel, chunked_scores

log = logging.getLogger(__name__)


def _best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def benchmark(images=1000, captions=5000, words_per_caption=10, regions=20, image_dim=1280,
              word_dim=1024, embed_dim=512, mem_mb=512, repeats=1, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.random((images, regions, image_dim), dtype=np.float32)
    T = captions * words_per_caption
    words = rng.normal(size=(T, word_dim)).astype(np.float32)
    seg = np.repeat(np.arange(captions), words_per_caption)
    cap_image = np.repeat(np.arange(images), max(1, captions // images))[:captions]
    torch.manual_seed(seed)
    model = FragmentModel(image_dim, word_dim, embed_dim)
    model.set_image_stats(feats[:50])
    res = {"images": images, "captions": captions, "words": T, "regions": regions, "embed_dim": embed_dim,
           "threads": torch.get_num_threads()}
    S = None

    def score():
        nonlocal S
        S = chunked_scores(model, feats, words, seg, captions, mem_mb)

    res["scoring_s"] = _best_of(score, repeats)
    t0 = time.perf_counter()
    retrieval.recall_table(*retrieval.ranks(S, cap_image))
    res["ranking_s"] = time.perf_counter() - t0
    # the bare GEMM the scorer is built on: (images*regions x h) @ (h x words), same chunking
    a = torch.randn(images * regions, embed_dim)
    b = torch.randn(embed_dim, T)
    chunk = max(1, int(mem_mb * 2**20 // (4 * regions * T))) * regions

    def gemm():
        for i in range(0, a.shape[0], chunk):
            a[i:i + chunk] @ b

    res["gemm_s"] = _best_of(gemm, repeats)
    res["gemm_gflops"] = 2 * a.shape[0] * embed_dim * T / res["gemm_s"] / 1e9
    res["scoring_over_gemm"] = res["scoring_s"] / res["gemm_s"]
    log.info("benchmark: %s", res)
    return res
