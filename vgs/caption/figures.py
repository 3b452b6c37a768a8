"""One figure per caption system: training loss and dev mean recall by epoch, every seed, trained
(solid) and untrained "(R)" (dashed) runs, with each run's best epoch marked."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..cache import read_json  # noqa: E402
from ..runtime import atomic_path  # noqa: E402


def training_figure(histories, out_png, title=""):
    """histories: train.json files (results/caption/{system}/{mode}/seed{s}/train.json)."""
    fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(10, 3.6))
    for path in histories:
        info = read_json(path, ["config", "history"])
        mode, seed = Path(path).parent.parent.name, info["config"]["seed"]
        ep = [h["epoch"] for h in info["history"]]
        style = "-" if mode != "untrained" else "--"
        label = f"{mode}, seed {seed}"
        ax_loss.plot(ep, [h["loss"] for h in info["history"]], style, marker=".", label=label)
        line, = ax_dev.plot(ep, [h["dev_mean_recall"] for h in info["history"]], style, marker=".", label=label)
        if info["best_epoch"]:
            ax_dev.plot([info["best_epoch"]], [info["best_dev_mean_recall"]], "*", ms=12, color=line.get_color())
    ax_loss.set(xlabel="epoch", ylabel="training loss (mean over batches)", title="loss")
    ax_dev.set(xlabel="epoch", ylabel="dev mean of R@1/5/10, both ways (%)", title="dev recall (* best epoch)")
    ax_dev.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
