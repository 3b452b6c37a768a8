"""k-means clusters of the grounded segment and box embeddings (2017 paper sec. 4), cluster
variance, variance-ranked pruning, the image/audio cluster affinity of eq. 2, and the random
clustering every figure is compared with (the same cluster sizes, members drawn at random)."""
import numpy as np


def kmeans(X, k, seed=0, algorithm="kmeans", n_init=1, max_iter=100):
    """(labels (N,), centroids (k, D)) of scikit-learn's KMeans (Lloyd) or MiniBatchKMeans
    (for the paper's scale: millions of groundings).  k is capped at the number of points."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    X = np.asarray(X, np.float32)
    k = int(min(k, len(X)))
    if algorithm == "minibatch":
        km = MiniBatchKMeans(k, random_state=seed, n_init=max(n_init, 3), max_iter=max_iter, batch_size=4096)
    else:
        km = KMeans(k, random_state=seed, n_init=n_init, max_iter=max_iter)
    labels = km.fit_predict(X)
    return labels.astype(np.int64), centroids(X, labels, k)


def centroids(X, labels, k):
    """Mean of each cluster's members (k, D); an empty cluster's centroid is 0."""
    X = np.asarray(X, np.float64)
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, labels, X)
    return (sums / np.maximum(np.bincount(labels, minlength=k), 1)[:, None]).astype(np.float32)


def variance(X, labels, cents):
    """Empirical variance of each cluster: mean squared distance of its members to its centroid."""
    d2 = ((np.asarray(X, np.float64) - cents[labels]) ** 2).sum(1)
    k = len(cents)
    return np.bincount(labels, d2, minlength=k) / np.maximum(np.bincount(labels, minlength=k), 1)


def affinity(img_emb, aud_emb, img_labels, aud_labels, k_img, k_aud):
    """Eq. 2: Affinity(I, A) = sum over grounding pairs (i, a) with i in I and a in A of i . a.
    -> (k_img, k_aud); one weighted bincount over the pairs."""
    dots = np.einsum("gd,gd->g", np.asarray(img_emb, np.float64), np.asarray(aud_emb, np.float64))
    flat = np.bincount(img_labels * k_aud + aud_labels, dots, minlength=k_img * k_aud)
    return flat.reshape(k_img, k_aud)


def random_like(labels, seed):
    """A random clustering with the same cluster sizes: the labels shuffled among the points."""
    return np.random.default_rng(seed).permutation(labels)
