"""The paper's Fig. 1 (right): mean cosine of "same" and "different" pairs on training and dev
images by epoch (epoch 0: the untrained net), one panel per system, every seed drawn."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..cache import read_json  # noqa: E402
from ..runtime import atomic_path  # noqa: E402

STYLE = {("train", "cos_same"): ("tab:blue", "-"), ("train", "cos_diff"): ("tab:blue", "--"),
         ("dev", "cos_same"): ("tab:orange", "-"), ("dev", "cos_diff"): ("tab:orange", "--")}


def plot_curves(histories, out_png):
    """histories: {system: [history.json path per seed]}."""
    fig, axes = plt.subplots(1, len(histories), figsize=(5.5 * len(histories), 4), squeeze=False, sharey=True)
    for ax, (system, paths) in zip(axes[0], histories.items()):
        for k, p in enumerate(paths):
            info = read_json(p, ["history"])
            ep = [h["epoch"] for h in info["history"]]
            for (part, m), (colour, ls) in STYLE.items():
                label = f"{part} {m[4:]}" if k == 0 else None
                ax.plot(ep, [h[part][m] for h in info["history"]], color=colour, ls=ls, label=label, alpha=0.9)
            ax.axvline(info["best_epoch"], color="grey", lw=0.8, ls=":",
                       label="best epoch (dev cost)" if k == 0 else None)
        ax.set_title(f"{system} ({len(paths)} seed{'s' if len(paths) > 1 else ''})")
        ax.set_xlabel("epoch (0 = untrained)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean cosine similarity")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("coscos² training: same vs different pairs (Synnaeve et al. 2014, Fig. 1 right)")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
