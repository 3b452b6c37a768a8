"""Does the first layer learn?  Diagnostics of the CNN's 64 conv1 filters (paper Fig. 2).

- relative change of each filter from its initialisation, ||W - W0|| / ||W0||;
- test top-1 with conv1 re-randomised (drawn again from the training init) and with conv1 put back
  to its own initialisation: how much the rest of the net relies on what conv1 learned;
- smoothness: mean cosine similarity of neighbouring mel rows within a filter (spectro-temporal
  structure; ~0 for noise).

Measured on the default corpus with PyTorch's default init (uniform, std 0.041 for 200 inputs): the
filters moved (median relative change 0.91) and the net relies on them (re-randomised: chance), but
what they learned (W - W0, smooth) sits on an initial noise of about the same norm, so Fig. 2 shows
noise.  Caffe's Gaussian filler (std 0.01, `wordcnn.conv1_init_std`) starts the filters 4x smaller,
so the learned structure dominates (README, "First-layer filters")."""
import copy

import numpy as np
import torch

from .models import WordNet


def smoothness(w):
    """Mean cosine similarity of neighbouring mel rows, w (64, 1, mels, frames)."""
    a, b = w[:, 0, 1:, :].flatten(1), w[:, 0, :-1, :].flatten(1)
    return float(torch.nn.functional.cosine_similarity(a, b).mean())


def conv1_diagnostics(model, init, x, y, seed):
    """Numbers for metrics.json['conv1']; `init`: conv1's weight before training; x, y: test windows."""
    from .train import evaluate

    w = model.conv1.weight.detach().cpu()
    rel = ((w - init).flatten(1).norm(dim=1) / init.flatten(1).norm(dim=1)).numpy()
    probe = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)  # another draw from the same init scheme
        frames, dim = model.window_shape
        fresh = WordNet("cnn", 2, conv1_init_std=model.conv1_init_std, frames=frames, dim=dim).conv1
    with torch.no_grad():
        probe.conv1.weight.copy_(fresh.weight)
        probe.conv1.bias.copy_(fresh.bias)
    rerandomised = evaluate(probe, x, y)[0]
    with torch.no_grad():
        probe.conv1.weight.copy_(init)
        probe.conv1.bias.copy_(model.conv1.bias)
    reset = evaluate(probe, x, y)[0]
    return {"relative_change": [round(float(r), 4) for r in rel],
            "relative_change_median": float(np.median(rel)),
            "norm_init": float(init.norm()), "norm_trained": float(w.norm()),
            "norm_learned": float((w - init).norm()),
            "top1_conv1_rerandomised": rerandomised, "top1_conv1_reset_to_init": reset,
            "smoothness_trained": smoothness(w), "smoothness_init": smoothness(init),
            "smoothness_learned": smoothness(w - init)}
