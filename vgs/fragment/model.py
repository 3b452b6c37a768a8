"""The embedding/alignment model and its batched scoring and max-margin cost (paper eqs. 1-2)."""
import torch
from torch import nn


class FragmentModel(nn.Module):
    """y = W_m v + b_m for image regions; x = ReLU(W_d w/|w| + b_d) for word vectors.

    Image features are optionally standardised with training-set statistics kept as buffers,
    so a saved model carries its own preprocessing."""

    def __init__(self, image_dim, word_dim, embed_dim=512, standardize_images=True):
        super().__init__()
        self.image_proj = nn.Linear(image_dim, embed_dim)
        self.word_proj = nn.Linear(word_dim, embed_dim)
        self.standardize_images = bool(standardize_images)
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_std", torch.ones(image_dim))

    def set_image_stats(self, feats, mask=None):
        """Per-dimension mean/std over the training regions (feats: (K, R, D); mask: real rows)."""
        flat = torch.as_tensor(feats, dtype=torch.float32)
        flat = flat[torch.as_tensor(mask)] if mask is not None else flat.reshape(-1, self.image_mean.numel())
        self.image_mean.copy_(flat.mean(0))
        # floor: constant dimensions (dead units) must not blow up
        self.image_std.copy_(flat.std(0).clamp_min(1e-3 * float(flat.std(0).mean()) + 1e-8))

    def embed_images(self, v):
        if self.standardize_images:
            v = (v - self.image_mean) / self.image_std
        return self.image_proj(v)

    def embed_words(self, w):
        # unit length, as in the paper: prevents exploding gradients
        w = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return torch.relu(self.word_proj(w))


def score_matrix(y, x, seg, n_caps, region_mask=None):
    """S[k, l] = sum_{t in caption l} max_{i in image k} max(0, y_i . x_t)   (eq. 1).

    y: (K, R, h) image fragments; x: (T, h) words of all captions, packed; seg: (T,) caption
    index of each word; region_mask: optional (K, R) bool of valid regions.
    One GEMM over all fragments x all words, max over regions, segment-sum by index_add."""
    K, R, h = y.shape
    d = (y.reshape(K * R, h) @ x.T).reshape(K, R, -1)
    if region_mask is not None:
        d = d.masked_fill(~region_mask[:, :, None], 0.0)
    best = d.amax(dim=1).clamp_min(0.0)  # (K, T); clamp after max == max of clamps
    S = torch.zeros(K, n_caps, dtype=best.dtype, device=best.device)
    return S.index_add(1, seg, best)


def margin_cost(S, margin=1.0):
    """C = sum_k [ sum_l max(0, S_kl - S_kk + m) + sum_l max(0, S_lk - S_kk + m) ]   (eq. 2).

    S is square (batch images x their captions, matching pairs on the diagonal). The l = k terms
    are kept as in the formula: they add the constant 2*m*K and no gradient."""
    diag = S.diagonal()
    rank_caps = (S - diag[:, None] + margin).clamp_min(0)  # image k vs. captions l
    rank_imgs = (S - diag[None, :] + margin).clamp_min(0)  # caption k vs. images l (S_lk)
    return rank_caps.sum() + rank_imgs.sum()


def chunked_scores(model, feats, words, seg, n_caps, mem_mb=512, progress=None):
    """Full (images x captions) score matrix without building the whole (K*R x T) product.

    feats: (K, R, D) raw region features; words: (T, Dw) raw word vectors. Image chunks are
    sized so one chunk's (chunk*R x T) product stays within mem_mb. Computed on the model's
    device; the result is a CPU array."""
    model.eval()
    dev = model.image_mean.device
    with torch.no_grad():
        x = model.embed_words(torch.as_tensor(words, dtype=torch.float32).to(dev))
        seg = torch.as_tensor(seg, dtype=torch.long).to(dev)
        K, R = feats.shape[:2]
        chunk = max(1, int(mem_mb * 2**20 // (4 * R * max(1, x.shape[0]))))
        out = torch.empty(K, n_caps)
        it = range(0, K, chunk)
        for a in (progress(it) if progress else it):
            y = model.embed_images(torch.as_tensor(feats[a:a + chunk], dtype=torch.float32).to(dev))
            out[a:a + chunk] = score_matrix(y, x, seg, n_caps).cpu()
    return out.numpy()
