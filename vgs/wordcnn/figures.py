"""Paper Fig. 1 (one word's log-mel window), Fig. 2 (the 64 learned conv filters) and how far those
filters moved from their initialisation (vgs/wordcnn/filters.py)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..runtime import atomic_path, open_h5  # noqa: E402
from .data import read_meta, read_windows  # noqa: E402
from .models import load_model  # noqa: E402


def _filter_grid(axes, w):
    """Each filter on its own symmetric scale (blue < 0 < red), mel bands upwards."""
    for f, ax in zip(w, axes.flat):
        m = np.abs(f).max() or 1.0
        ax.imshow(f, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])


def plot_filters(model_path, out_png):
    model, _ = load_model(model_path)
    if model.conv1 is None:
        raise ValueError(f"{model_path}: arch {model.arch!r} has no convolutional layer to plot")
    w = model.conv1.weight.detach().numpy()[:, 0]  # (64, 40 mels or D feature rows, 5 frames)
    fig, axes = plt.subplots(4, 16, figsize=(12, 6))
    _filter_grid(axes, w)
    fig.suptitle(f"64 learned first-layer filters ({w.shape[1]} feature rows x {w.shape[2]} frames)")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_conv1_moved(model_path, out_png, examples=8):
    """How far each filter moved from its initialisation, and what it learned (W - W0) beside where it
    started, for the filters that moved most (numbers from the model's conv1 diagnostics)."""
    model, ck = load_model(model_path)
    d, w0 = ck["metrics"].get("conv1"), ck.get("conv1_init")
    if d is None or w0 is None:
        raise ValueError(f"{model_path}: no conv1 initialisation stored (retrain it: wordcnn_train)")
    w0 = w0.numpy()[:, 0]
    w = model.conv1.weight.detach().numpy()[:, 0]
    rel = np.array(d["relative_change"])
    top = np.argsort(-rel)[:examples]
    fig = plt.figure(figsize=(12, 6))
    ax = fig.add_subplot(2, 1, 1)
    ax.bar(np.arange(len(rel)), rel, color="tab:blue")
    ax.set_xlabel("filter"), ax.set_ylabel("||W - W0|| / ||W0||"), ax.set_xlim(-1, len(rel))
    ax.set_title(f"conv1 moved from its init: median {np.median(rel):.2f}; test top-1 {ck['metrics']['top1']:.3f}, "
                 f"conv1 re-randomised {d['top1_conv1_rerandomised']:.3f}, reset to init "
                 f"{d['top1_conv1_reset_to_init']:.3f}; smoothness learned {d['smoothness_learned']:.2f}, "
                 f"init {d['smoothness_init']:.2f}", fontsize=9)
    axes = np.array([[fig.add_subplot(4, examples, 2 * examples + i + 1 + r * examples) for i in range(examples)]
                     for r in range(2)])
    _filter_grid(axes[0], w0[top])
    _filter_grid(axes[1], (w - w0)[top])
    axes[0, 0].set_ylabel("init W0", fontsize=8), axes[1, 0].set_ylabel("learned W - W0", fontsize=8)
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
    x = read_windows(windows_path, hits[:1])[0]  # (frames, dim): (100, 40 mels) for log-mel
    with open_h5(windows_path) as f:
        shift = float(f.attrs.get("frame_shift_ms", 10.0))
    fig, ax = plt.subplots(figsize=(6, 3))
    im = ax.imshow(x.T, origin="lower", aspect="auto", cmap="magma")
    ax.set_xlabel(f"frame ({shift:g} ms)"), ax.set_ylabel("feature dimension (mel band)")
    ax.set_title(f'{x.shape[0]} x {x.shape[1]} window of "{word}"')
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
