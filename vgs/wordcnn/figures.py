"""Paper Fig. 1 (one word's log-mel window) and Fig. 2 (the 64 learned conv filters)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..runtime import atomic_path  # noqa: E402
from .data import read_meta, read_windows  # noqa: E402
from .models import load_model  # noqa: E402


def plot_filters(model_path, out_png):
    model, _ = load_model(model_path)
    if model.conv1 is None:
        raise ValueError(f"{model_path}: arch {model.arch!r} has no convolutional layer to plot")
    w = model.conv1.weight.detach().numpy()[:, 0]  # (64, 40 mels, 5 frames)
    fig, axes = plt.subplots(4, 16, figsize=(12, 6))
    for k, ax in enumerate(axes.flat):
        f = w[k]
        ax.imshow(f, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("64 learned first-layer filters (40 mel bands x 5 frames)")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_word_window(windows_path, out_png, word=None):
    """The first token of `word`, or of the longest word type when none is given."""
    words = read_meta(windows_path)["words"]
    if word is None:
        word = max(sorted(set(words)), key=len)
    hits = np.flatnonzero(words == word)
    if not len(hits):
        raise ValueError(f"{windows_path}: word {word!r} not in the windows")
    x = read_windows(windows_path, hits[:1])[0]  # (100 frames, 40 mels)
    fig, ax = plt.subplots(figsize=(6, 3))
    im = ax.imshow(x.T, origin="lower", aspect="auto", cmap="magma")
    ax.set_xlabel("frame (10 ms)"), ax.set_ylabel("mel band")
    ax.set_title(f'log-mel window of "{word}"')
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
