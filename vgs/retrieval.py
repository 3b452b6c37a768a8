"""Retrieval ranks, recall@K and median rank from an (images x captions) score matrix; random
baseline.  Shared by every stage that ranks images against captions."""
import numpy as np


def ranks(S, cap_image):
    """1-based ranks, ties counted against the system (pessimistic: an all-zero row ranks last).

    search[c]: rank of caption c's image among all images; annotation[k]: rank of the best-placed
    of image k's captions among all captions."""
    S = np.asarray(S, dtype=np.float64)
    K, C = S.shape
    cap_image = np.asarray(cap_image)
    true = S[cap_image, np.arange(C)]
    search = (S >= true[None, :]).sum(0)  # counts itself once -> 1-based
    is_true = cap_image[None, :] == np.arange(K)[:, None]
    best = np.where(is_true, S, -np.inf).max(1)
    annotation = 1 + ((S >= best[:, None]) & ~is_true).sum(1)
    has = is_true.any(1)  # images without captions cannot be annotated
    return search, annotation[has]


def recall_table(search, annotation, ks=(1, 5, 10)):
    out = {}
    for name, r in (("search", search), ("annotation", annotation)):
        r = np.asarray(r)
        out[name] = {f"R@{k}": float(100.0 * (r <= k).mean()) for k in ks}
        out[name]["median_rank"] = float(np.median(r))
        out[name]["n_queries"] = int(len(r))
    return out


def mean_recall(table, ks=(1, 5, 10)):
    return float(np.mean([table[d][f"R@{k}"] for d in ("search", "annotation") for k in ks]))


def random_analytic(n_images, caps_per_image, ks=(1, 5, 10)):
    """Expected recall of a uniformly random ranking (exact, no sampling)."""
    caps_per_image = np.asarray(caps_per_image)
    C = int(caps_per_image.sum())
    out = {"search": {f"R@{k}": 100.0 * min(k, n_images) / n_images for k in ks},
           "annotation": {}}
    out["search"]["median_rank"] = float(_median_from_cdf(lambda r: np.minimum(r, n_images) / n_images, n_images))

    def cdf(r):  # P(best of m true captions ranks <= r) among C-m+? : hypergeometric "none in top r"
        r = np.atleast_1d(r)
        p = np.zeros(len(r))
        for m in np.unique(caps_per_image):
            w = (caps_per_image == m).mean()
            j = np.arange(m)
            # P(no true caption in the top r of C) = prod_j (C - r - j) / (C - j)
            none = np.prod(np.clip(C - r[:, None] - j, 0, None) / (C - j), axis=1)
            p += w * (1 - none)
        return p

    for k in ks:
        out["annotation"][f"R@{k}"] = float(100.0 * cdf(k)[0])
    out["annotation"]["median_rank"] = float(_median_from_cdf(cdf, C))
    return out


def _median_from_cdf(cdf, n):
    r = np.arange(1, n + 1)
    return int(r[np.argmax(cdf(r) >= 0.5)])


def random_simulated(cap_image, ks=(1, 5, 10), trials=20, seed=0):
    """Recall of random score matrices (seeded), averaged over trials: checks random_analytic."""
    rng = np.random.default_rng(seed)
    K = int(np.max(cap_image)) + 1
    tabs = [recall_table(*ranks(rng.random((K, len(cap_image))), cap_image), ks) for _ in range(trials)]
    return {d: {m: float(np.mean([t[d][m] for t in tabs])) for m in tabs[0][d]} for d in tabs[0]}
