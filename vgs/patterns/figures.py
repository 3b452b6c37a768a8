"""The 2017 paper's four figures, each beside a random-clustering baseline where it shows clusters:
Fig. 1 one caption's groundings, Fig. 2 purity x log size against variance, Fig. 3 the most
central crops of image clusters with their linked audio label, Fig. 4 t-SNE of audio centroids."""
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from ..images import load_image  # noqa: E402
from ..runtime import atomic_path, open_h5  # noqa: E402
from . import proposals as prop  # noqa: E402

log = logging.getLogger(__name__)
COLOURS = plt.get_cmap("tab10").colors


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _image(path):
    return load_image(path)


def fig1_grounding(g, items, fbank_h5, words, params, out_png, seed=0):
    """Fig. 1: the box grid and a few segment proposals (left), the accepted groundings (right): boxes
    on the image and segments on the spectrogram, colour-matched, with the aligned transcript."""
    counts = items["n_groundings"].to_numpy()
    cand = np.flatnonzero(counts == counts.max()) if len(counts) else []
    if not len(cand):
        fig = plt.figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "no groundings", ha="center")
        return _save(fig, out_png)
    i = int(np.random.default_rng(seed).choice(cand))
    it = items.iloc[i]
    mine = np.flatnonzero(g["item"] == i)
    mine = mine[np.argsort(g["rank"][mine])]
    img = _image(it["path"])
    h, w = img.shape[:2]
    with open_h5(fbank_h5) as f:
        spec = f["feats"][it["utt_id"]][:]
    bp, sp = params["boxes"], params["segments"]
    fig, ax = plt.subplots(2, 2, figsize=(12, 6.5), gridspec_kw={"height_ratios": [3, 1.3]})
    ax[0, 0].imshow(img)
    for x in np.linspace(0, w, bp["grid"] + 1):
        ax[0, 0].axvline(x, color="w", lw=0.6)
    for y in np.linspace(0, h, bp["grid"] + 1):
        ax[0, 0].axhline(y, color="w", lw=0.6)
    n_boxes = len(prop.grid_boxes(bp["grid"], bp["min_side"], bp["min_aspect"], bp["max_aspect"], w / h))
    ax[0, 0].set_title(f"{bp['grid']}x{bp['grid']} grid: {n_boxes} box proposals")
    ax[0, 1].imshow(img)
    for r, gi in enumerate(mine):
        x0, y0, x1, y1 = prop.pixel_boxes(g["box"][gi:gi + 1], w, h)[0]
        ax[0, 1].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2.5, color=COLOURS[r % 10]))
    ax[0, 1].set_title(f"top {len(mine)} groundings (scores {', '.join(f'{s:.2f}' for s in g['score'][mine])})")
    segs = prop.segments(len(spec), sp["step"], sp["min_frames"], sp["max_frames"])
    for a in (ax[1, 0], ax[1, 1]):
        a.imshow(spec.T, origin="lower", aspect="auto", cmap="viridis")
        a.set_xlabel("frame (10 ms)")
        a.set_yticks([])
    for n, (s, e) in enumerate(segs[:: max(1, len(segs) // 12)]):  # a few families of proposals
        ax[1, 0].plot([s, e], [2 + 3 * (n % 12)] * 2, color="r", lw=1.5)
    ax[1, 0].set_title(f"{len(segs)} segment proposals (some shown)")
    ww = words[words["utt_id"] == it["utt_id"]]
    for _, row in ww.iterrows():  # one label per word of one caption
        ax[1, 1].text((row["start"] + row["end"]) * 50, spec.shape[1] + 1, row["word"], ha="center",
                      va="bottom", fontsize=8, rotation=30)
    for r, gi in enumerate(mine):
        s, e = g["span"][gi]
        ax[1, 1].axvspan(s, e, ymin=0.05 + 0.08 * (r % 4), ymax=0.12 + 0.08 * (r % 4), color=COLOURS[r % 10], alpha=0.9)
    ax[1, 1].set_title("accepted segments and the aligned transcript", pad=28)
    for a in ax[0]:
        a.axis("off")
    fig.suptitle(f"{it['utt_id']}: grounding (paper Fig. 1)")
    _save(fig, out_png)


def fig2_purity_variance(tables, out_png, k):
    """Fig. 2: purity x ln(size) against variance of the audio clusters, least-squares line; the
    random clustering (same sizes) beside it."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (name, t), colour in zip(tables.items(), ("C0", "C7")):
        t = t[(t["size"] > 0) & t["purity"].notna()]
        x, y = t["variance"].to_numpy(), (t["purity"] * np.log(t["size"])).to_numpy()
        ax.scatter(x, y, s=12, alpha=0.7, color=colour, label=name)
        if len(x) > 1 and np.ptp(x) > 0:
            a, b = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 2)
            ax.plot(xs, a * xs + b, color=colour, lw=1.5)
    ax.set_xlabel("cluster variance σ²")
    ax.set_ylabel("purity × ln(cluster size)")
    ax.set_title(f"audio clusters, k = {k} (paper Fig. 2)")
    ax.legend()
    _save(fig, out_png)


def fig3_image_clusters(g, items, img_tables, centroids, labels, audio_label_of, out_png, n_clusters=10, n_crops=9):
    """Fig. 3: the n_crops boxes nearest the centroid of n_clusters image clusters (the lowest-variance
    ones with at least n_crops distinct crops), titled with the label of the most associated audio
    cluster; last panel: one cluster of the random clustering."""
    # distinct crops: the captions of one image often ground the same box
    image_of = items["image_id"].to_numpy(dtype=object)[g["item"].astype(np.int64)]
    crop_key = pd.Series([f"{m} {b}" for m, b in zip(image_of, np.round(g["box"], 3).tolist())])
    rows = []
    for name, t in img_tables.items():
        distinct = crop_key.groupby(labels[name]).nunique().reindex(range(len(t)), fill_value=0).to_numpy()
        ok = np.flatnonzero(distinct >= n_crops)
        pick = ok[np.argsort(t["variance"].to_numpy()[ok], kind="stable")]
        rows += [(name, c) for c in pick[: n_clusters if name == "k-means" else 1]]
    side = int(np.ceil(np.sqrt(n_crops)))
    fig, axes = plt.subplots(1, len(rows), figsize=(2.1 * len(rows), 2.6), squeeze=False)
    cache = {}
    for ax, (name, c) in zip(axes[0], rows):
        members = np.flatnonzero(labels[name] == c)
        d = ((g["box_emb"][members] - centroids[name][c]) ** 2).sum(1)
        members = members[np.argsort(d, kind="stable")]
        _, first = np.unique(crop_key.to_numpy()[members], return_index=True)
        tiles = []
        for gi in members[np.sort(first)][:n_crops]:  # nine crops per cluster
            it = items.iloc[int(g["item"][gi])]
            img = cache.setdefault(it["path"], _image(it["path"]))
            x0, y0, x1, y1 = prop.pixel_boxes(g["box"][gi:gi + 1], img.shape[1], img.shape[0])[0]
            tiles.append(np.asarray(Image.fromarray(img[y0:y1, x0:x1]).resize((64, 64))))
        tiles += [np.full((64, 64, 3), 255, np.uint8)] * (side * side - len(tiles))
        grid = np.concatenate([np.concatenate(tiles[r * side:(r + 1) * side], 1) for r in range(side)], 0)
        ax.imshow(grid)
        ax.set_title(f"{audio_label_of[name][c] or '-'}" + ("\n(random)" if name != "k-means" else ""), fontsize=9)
        ax.axis("off")
    fig.suptitle("most central crops of image clusters, titled with their linked audio cluster's label (paper Fig. 3)",
                 fontsize=10)
    _save(fig, out_png)


def fig4_tsne(centroids, tables, out_png, top=150, seed=0):
    """Fig. 4: t-SNE of the `top` lowest-variance audio cluster centroids, labelled; the random
    clustering's centroids beside them."""
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(1, len(centroids), figsize=(8 * len(centroids), 7), squeeze=False)
    for ax, (name, C) in zip(axes[0], centroids.items()):
        t = tables[name]
        ok = np.flatnonzero(t["size"].to_numpy() > 0)
        idx = ok[np.argsort(t["variance"].to_numpy()[ok], kind="stable")[:top]]
        if len(idx) < 3:
            ax.set_title(f"{name}: too few clusters for t-SNE")
            continue
        xy = TSNE(2, perplexity=min(30.0, (len(idx) - 1) / 3), random_state=seed, init="pca").fit_transform(C[idx])
        ax.scatter(xy[:, 0], xy[:, 1], s=4, color="C0" if name == "k-means" else "C7")
        for (x, y), c in zip(xy, idx):  # one text label per centroid
            ax.text(x, y, t["label"].iloc[c] or "-", fontsize=7, ha="center", va="bottom")
        ax.set_title(f"{name}: {len(idx)} lowest-variance audio centroids")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("t-SNE of audio cluster centroids (paper Fig. 4)")
    _save(fig, out_png)
