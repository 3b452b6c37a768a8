"""Fig. 4 of the paper: test images with, stacked to the right, each caption word linked to its
best-scoring region (link drawn only for positive scores), words shown as ground-truth text."""
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from vgs.cache import read_tsv  # noqa: E402
from vgs.images import load_image  # noqa: E402

from vgs.fragment.data import load_split  # noqa: E402
from vgs.fragment.grounding import region_word_scores  # noqa: E402
from vgs.fragment.train import load_model  # noqa: E402
from vgs.runtime import atomic_path  # noqa: E402

log = logging.getLogger(__name__)


def alignment_figure(model_pt, regions_h5, words_h5, utterances_tsv, images_tsv, out_png, n_images=4,
                     seed=0, title=""):
    model, _ = load_model(model_pt)
    test = load_split(regions_h5, words_h5, utterances_tsv, "test")
    paths = read_tsv(images_tsv, ["image_id", "path"])
    paths = dict(zip(paths["image_id"], paths["path"]))
    rng = np.random.default_rng(seed)
    nonempty = np.flatnonzero(np.diff(test.offsets) > 0)
    caps = []  # one caption (its first non-empty one) per randomly chosen image
    for k in rng.permutation(np.unique(test.cap_image[nonempty]))[:n_images]:
        caps.append(nonempty[test.cap_image[nonempty] == k][0])
    scores = region_word_scores(model, test)
    cols = 2
    rows = int(np.ceil(len(caps) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, c in zip(axes.ravel(), caps):
        _panel(ax, test, c, scores, paths)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return len(caps)


def _panel(ax, data, c, scores, paths):
    k = data.cap_image[c]
    path = paths.get(data.image_ids[k], "")
    if path and Path(path).exists():
        img = load_image(path)
    else:
        log.warning("image %s: file %r not found; drawing a blank canvas", data.image_ids[k], path)
        b = data.boxes[k]
        img = np.full((int(max(b[:, 3].max(), 1)), int(max(b[:, 2].max(), 1)), 3), 200, np.uint8)
    H, W = img.shape[:2]
    ax.imshow(img, extent=(0, W, H, 0))
    t = np.arange(*data.offsets[c:c + 2])
    best = scores[t].argmax(1)
    best_s = scores[t, best]
    palette = plt.cm.tab10([0, 1, 2, 3, 4, 5, 6, 8, 9])  # no grey: grey marks unlinked words
    colors = palette[np.arange(len(t)) % len(palette)]
    x_text = W * 1.25
    ys = np.linspace(H * 0.05, H * 0.95, len(t)) if len(t) > 1 else [H / 2]
    for j, (ti, r, s, y) in enumerate(zip(t, best, best_s, ys)):
        linked = round(float(s), 2) > 0  # the paper links only positive scores (as printed)
        ax.text(x_text, y, f"{data.word_text[ti]}  {s:+.2f}", va="center", fontsize=9,
                color=colors[j] if linked else "0.5")
        if linked:
            x0, y0, x1, y1 = data.boxes[k, r]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.8, ec=colors[j]))
            ax.plot([x1, x_text - W * 0.02], [(y0 + y1) / 2, y], color=colors[j], lw=1)
    ax.set_xlim(0, W * 1.9)
    ax.set_ylim(H, 0)
    ax.set_title(data.cap_ids[c], fontsize=8)
