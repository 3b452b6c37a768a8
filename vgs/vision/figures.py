"""Figure: a few images with their kept regions and top ImageNet labels (GT boxes dashed if known)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vgs.cache import read_tsv  # noqa: E402
from vgs.runtime import atomic_path  # noqa: E402

from . import encoder as enc  # noqa: E402
from .regions import load_image  # noqa: E402
from .stage import read_manifest  # noqa: E402
from .store import read_regions  # noqa: E402


def regions_figure(regions_h5, manifest, out_png, n_images=6, n_labels=6, boxes_tsv=None, seed=0):
    """Grid of `n_images` (a seeded sample) with all kept detections (thin) and labels for the best
    `n_labels` (top-1 class name and probability); the whole-frame label is in the title."""
    reg = read_regions(regions_h5, ["boxes", "scores", "top_classes", "top_probs", "n_proposals"])
    paths = read_manifest(manifest).set_index("image_id")["path"]
    gt = read_tsv(boxes_tsv, ["image_id", "category", "x0", "y0", "x1", "y1"]) if boxes_tsv else None
    names = enc.class_names("clean")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(reg["image_ids"]), min(n_images, len(reg["image_ids"])), replace=False))
    cols = min(3, len(pick))
    rows = -(-len(pick) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False)
    cmap = plt.get_cmap("autumn")
    for ax, i in zip(axes.flat, pick):
        iid = reg["image_ids"][i]
        ax.imshow(load_image(paths[iid]))
        n = int(reg["n_proposals"][i])
        for r in range(n, 0, -1):  # draw the best last so it is on top
            x0, y0, x1, y1 = reg["boxes"][i, r]
            best = r <= n_labels
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2 if best else 0.6,
                                       ec=cmap((r - 1) / max(n_labels, 1)) if best else "white", alpha=0.9))
            if best:
                ax.text(x0 + 2, y0 + 2, f"{r}. {names[reg['top_classes'][i, r, 0]]} "
                        f"{reg['top_probs'][i, r, 0]:.2f}", fontsize=6.5, va="top",
                        bbox=dict(fc="black", alpha=0.55, pad=1, lw=0), color="white")
        if gt is not None:
            for _, g in gt[gt["image_id"] == iid].iterrows():
                ax.add_patch(plt.Rectangle((g.x0, g.y0), g.x1 - g.x0, g.y1 - g.y0, fill=False, lw=1.2,
                                           ls="--", ec="cyan"))
                ax.text(g.x0, g.y1, g.category, fontsize=6.5, color="cyan", va="top")
        ax.set_title(f"{iid}: {n} regions; frame: {names[reg['top_classes'][i, 0, 0]]} "
                     f"{reg['top_probs'][i, 0, 0]:.2f}", fontsize=7.5)
        ax.axis("off")
    for ax in axes.flat[len(pick):]:
        ax.axis("off")
    fig.suptitle(f"{reg['attrs']['encoder']} regions (numbered by score, top-1 ImageNet label)"
                 + ("; dashed cyan = ground truth" if gt is not None else ""), fontsize=9)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
