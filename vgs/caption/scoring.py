"""Image/caption similarities and the three training losses, for whole batches at once.

Images are cell embeddings I (K, N, D) (N = 1 for the fc tower, H*W for a conv map); captions are
frame embeddings A (C, T, D) with valid lengths (C,).  Every similarity returns the (K, C) matrix:

  dot   <pool(I), pool(A)>, pools = mean over cells / valid frames, then L2 normalisation of the
        audio vector (`normalize: audio`, the 2017 paper), of both (`both`) or none (`none`)
  sisa  mean over cells and frames of the matchmap I_n . A_t (DAVEnet; = dot of the unnormalised pools)
  misa  for each frame the best cell, averaged over frames (the matchmap paper's score)
  sima  for each cell the best frame, averaged over cells

The matchmaps of a block of images x captions are one GEMM ((K*N, D) x (D, C*T)) followed by
reductions; `chunked_similarity` cuts the image and caption sets into blocks whose matchmaps fit
a memory budget, so scoring 1000 x 5000 never holds the whole (K, N, C, T) tensor."""
import numpy as np
import torch
import torch.nn.functional as F

from .data import pad_batch
from .models import frame_mask, masked_mean

SIMILARITIES = ("dot", "sisa", "misa", "sima")
LOSSES = ("sampled_impostor", "all_impostors", "infonce")


def pooled(I, A, lengths, normalize="none"):
    """Pooled image (K, D) and caption (C, D) vectors of the dot similarity."""
    i, a = I.mean(1), masked_mean(A, lengths)
    if normalize in ("audio", "both"):
        a = F.normalize(a, dim=-1)
    if normalize == "both":
        i = F.normalize(i, dim=-1)
    return i, a


def similarity(name, I, A, lengths, normalize="none"):
    """(K, C) scores of every image in I against every caption in A (see module doc)."""
    if name == "dot":
        i, a = pooled(I, A, lengths, normalize)
        return i @ a.T
    if name == "sisa":
        i, a = pooled(I, A, lengths, "none")
        return i @ a.T
    K, N, D = I.shape
    C, T, _ = A.shape
    valid = frame_mask(lengths, T)  # (C, T)
    if name == "misa":  # cells last, so the max over cells reduces contiguous memory
        best = (A.reshape(C * T, D) @ I.reshape(K * N, D).T).reshape(C, T, K, N).amax(-1)
        return ((best * valid[..., None]).sum(1) / lengths.clamp_min(1).to(best.dtype)[:, None]).T
    if name == "sima":  # frames last, for the max over frames
        M = (I.reshape(K * N, D) @ A.reshape(C * T, D).T).reshape(K, N, C, T)
        return M.masked_fill(~valid[None, None], float("-inf")).amax(-1).mean(1)
    raise ValueError(f"unknown similarity {name!r}; allowed: {', '.join(SIMILARITIES)}")


def block_sizes(name, K, N, C, T, mem_mb):
    """(images, captions) per block so that one block's matchmap (float32) fits mem_mb."""
    if name in ("dot", "sisa"):
        return K, C
    budget = max(1, int(mem_mb * 2**20 // 4))
    per_pair = N * T * 2  # the matchmap and one reduction temporary of the same size
    caps = max(1, min(C, budget // max(1, per_pair * min(K, 64))))
    imgs = max(1, min(K, budget // max(1, per_pair * caps)))
    return imgs, caps


def chunked_similarity(name, I, frames, offsets, normalize="none", mem_mb=512):
    """The full (K, C) score matrix of images I (K, N, D) (a tensor on the device that computes) and
    captions given packed (frames (sum T, D), offsets, numpy), in blocks whose matchmaps fit mem_mb.
    Caption blocks hold captions of similar length, padded only to their own longest."""
    K, N, _ = I.shape
    lengths = np.diff(offsets)
    bi, bc = block_sizes(name, K, N, len(lengths), int(lengths.max()), mem_mb)
    order = np.argsort(lengths, kind="stable")
    S = torch.empty(K, len(lengths), device=I.device)
    for c0 in range(0, len(lengths), bc):
        idx = order[c0:c0 + bc]
        a, L = (t.to(I.device) for t in pad_batch(frames, offsets, idx))
        for k0 in range(0, K, bi):
            S[k0:k0 + bi, torch.as_tensor(idx, device=I.device)] = similarity(name, I[k0:k0 + bi], a, L, normalize)
    return S


# --- losses on a square batch score matrix S (images x captions, matching pairs on the diagonal) ---

def impostors(B, rng):
    """One impostor index != j per item j, uniform over the other B - 1 (seeded numpy Generator)."""
    if B < 2:
        raise ValueError("an impostor needs a batch of at least 2 pairs")
    idx = rng.integers(0, B - 1, size=B)
    return idx + (idx >= np.arange(B))


def sampled_impostor_loss(S, margin=1.0, imp_image=None, imp_caption=None):
    """Harwath & Glass (2017) eq. 1: sum_j max(0, S[j, c_j] - S[j, j] + m) + max(0, S[i_j, j] - S[j, j] + m),
    c_j an impostor caption for image j and i_j an impostor image for caption j."""
    j = torch.arange(S.shape[0], device=S.device)
    p = S.diagonal()
    imp_c = S[j, torch.as_tensor(imp_caption, device=S.device)]
    imp_i = S[torch.as_tensor(imp_image, device=S.device), j]
    return (imp_c - p + margin).clamp_min(0).sum() + (imp_i - p + margin).clamp_min(0).sum()


def all_impostors_loss(S, margin=1.0):
    """The matchmap paper's hinge over every mismatched pair of the batch, per pair (1 / B):
    (1/B) sum_j sum_{k != j} max(0, S[j, k] - S[j, j] + m) + max(0, S[k, j] - S[j, j] + m)."""
    B = S.shape[0]
    p = S.diagonal()
    off = ~torch.eye(B, dtype=torch.bool, device=S.device)
    caps = (S - p[:, None] + margin).clamp_min(0)  # image j vs. captions k
    imgs = (S - p[None, :] + margin).clamp_min(0)  # caption j vs. images k (S[k, j])
    return (caps[off].sum() + imgs[off].sum()) / B


def infonce_loss(S, temperature=0.07):
    """MILAN / Ilharco et al.: bidirectional in-batch softmax over all in-batch negatives, no margin:
    mean_j -log softmax_k(S[j, :] / t)_j  +  mean_j -log softmax_k(S[:, j] / t)_j."""
    target = torch.arange(S.shape[0], device=S.device)
    z = S / temperature
    return F.cross_entropy(z, target) + F.cross_entropy(z.T, target)


def batch_loss(name, S, cfg, rng):
    if name == "sampled_impostor":
        return sampled_impostor_loss(S, cfg["margin"], impostors(len(S), rng), impostors(len(S), rng))
    if name == "all_impostors":
        return all_impostors_loss(S, cfg["margin"])
    if name == "infonce":
        return infonce_loss(S, cfg["temperature"])
    raise ValueError(f"unknown loss {name!r}; allowed: {', '.join(LOSSES)}")
