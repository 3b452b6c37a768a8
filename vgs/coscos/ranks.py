"""The four rank definitions of Synnaeve et al. (2014, §3), as the published evaluation code
(crossitlearn embed_eval.py) computes them: cosine similarity in the embedding space, every image
fragment a query of its own, the rank of the best-placed relevant item.

  word_similarity      query a token, items the other tokens: relevant = a token of the same image
  word_token_by_image  query a fragment, items the tokens: relevant = a token of the fragment's image
  word_type_by_image   query a fragment, items the tokens: relevant = a token whose word (type) occurs
                       in the fragment's image's captions
  image_token_by_word  query a token, items the fragments: relevant = a fragment of the token's image

Ranks are 1-based; ties count against the system (1 + the irrelevant items scoring >= the best
relevant one), as vgs/retrieval.py.  A query with no relevant item (a token that is its image's only
one; a fragment of an image without tokens) has no rank: it is left out and counted.  Each query
block is one GEMM; nothing loops over pairs."""
import numpy as np
import torch

TASKS = ("word_similarity", "word_token_by_image", "word_type_by_image", "image_token_by_word")
LABELS = {"word_similarity": "Word Similarity", "word_token_by_image": "Word Token Search by Image",
          "word_type_by_image": "Word Type Search by Image", "image_token_by_word": "Image Token Search by Word"}


def first_relevant_ranks(Q, items, relevant, exclude_self=False, block=2048):
    """Q (nq, d), items (ni, d), both L2-normalised rows (torch); relevant(lo, hi) → (hi-lo, ni) bool
    numpy mask.  Returns 1-based ranks (nq,) with 0 where a query has no relevant item."""
    out = np.zeros(len(Q), np.int64)
    for lo in range(0, len(Q), block):
        hi = min(lo + block, len(Q))
        S = (Q[lo:hi] @ items.T).double().cpu().numpy()
        rel = relevant(lo, hi)
        ranked = np.ones_like(rel)
        if exclude_self:  # the query is item lo+j: neither relevant nor a competitor
            ranked[np.arange(hi - lo), np.arange(lo, hi)] = False
            rel = rel & ranked
        best = np.where(rel, S, -np.inf).max(1, initial=-np.inf)
        r = 1 + ((S >= best[:, None]) & ranked & ~rel).sum(1)
        out[lo:hi] = np.where(np.isfinite(best), r, 0)
    return out


def task_ranks(E_tok, E_frag, tok_image, tok_word, frag_image, n_images, block=2048):
    """{task: ranks (0 = no relevant item)} for token embeddings E_tok and fragment embeddings E_frag
    (torch, any norm; normalised here)."""
    E_tok = torch.nn.functional.normalize(E_tok.float(), dim=1)
    E_frag = torch.nn.functional.normalize(E_frag.float(), dim=1)
    types, tok_type = np.unique(np.asarray(tok_word, dtype=str), return_inverse=True)
    has_type = np.zeros((n_images, len(types)), bool)  # image k's captions contain word type w
    has_type[tok_image, tok_type] = True
    return {
        "word_similarity": first_relevant_ranks(
            E_tok, E_tok, lambda lo, hi: tok_image[lo:hi, None] == tok_image[None, :], True, block),
        "word_token_by_image": first_relevant_ranks(
            E_frag, E_tok, lambda lo, hi: frag_image[lo:hi, None] == tok_image[None, :], False, block),
        "word_type_by_image": first_relevant_ranks(
            E_frag, E_tok, lambda lo, hi: has_type[frag_image[lo:hi]][:, tok_type], False, block),
        "image_token_by_word": first_relevant_ranks(
            E_tok, E_frag, lambda lo, hi: tok_image[lo:hi, None] == frag_image[None, :], False, block),
    }


def summary(ranks, ks=(1, 5, 10, 25)):
    """Median and mean rank and recall@K (%) of the queries that have a rank."""
    r = np.asarray(ranks)
    r = r[r > 0]
    out = {"median_rank": float(np.median(r)), "mean_rank": float(r.mean()), "queries": int(len(r))}
    out.update({f"R@{k}": float(100.0 * (r <= k).mean()) for k in ks})
    return out
