"""Entry points of the clustering and evaluation rules (patterns_cluster, patterns_evaluate)."""
import json
import logging
import time

import h5py
import numpy as np
import pandas as pd

from ..cache import read_tsv
from ..runtime import atomic_path, open_h5, strings
from ..truth import name_forms
from . import cluster as cl
from . import labels as lb
from . import metrics as mt
from .vad import read_words

log = logging.getLogger(__name__)


def read_groundings(path):
    """(groundings dict of arrays, items DataFrame, attrs) of a groundings.h5."""
    with open_h5(path) as f:
        g = {k: f["groundings"][k][:] for k in f["groundings"]}
        it = {k: (strings(f["items"][k][:]) if f["items"][k].dtype.kind in "OS" else f["items"][k][:])
              for k in f["items"]}
        attrs = dict(f.attrs)
    return g, pd.DataFrame(it), attrs


def run_cluster(groundings_h5, out_h5, params):
    """Rule patterns_cluster: for each k, k-means of the segment and of the box embeddings, their
    variances and eq. 2 affinities, and a random clustering of each with the same sizes."""
    t0, c0 = time.perf_counter(), time.process_time()
    g, _, _ = read_groundings(groundings_h5)
    if len(g["item"]) == 0:
        raise ValueError(f"{groundings_h5}: no groundings to cluster (see its grounding_report.json)")
    X = {"audio": g["seg_emb"], "image": g["box_emb"]}
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        for k in params["ks"]:
            for kind, labels_of in (("kmeans", None), ("random", "kmeans")):
                grp = f.create_group(f"k{k}/{kind}")
                lab = {}
                for m in ("audio", "image"):
                    if labels_of is None:
                        lab[m], _ = cl.kmeans(X[m], k, params["seed"], params["algorithm"])
                    else:  # same sizes as the k-means clusters, members drawn at random
                        lab[m] = cl.random_like(f[f"k{k}/{labels_of}/{m}/labels"][:], [params["seed"], k, m == "audio"])
                    kk = int(min(k, len(X[m])))
                    cents = cl.centroids(X[m], lab[m], kk)
                    grp.create_dataset(f"{m}/labels", data=lab[m])
                    grp.create_dataset(f"{m}/centroids", data=cents)
                    grp.create_dataset(f"{m}/variance", data=cl.variance(X[m], lab[m], cents))
                grp.create_dataset("affinity", data=cl.affinity(X["image"], X["audio"], lab["image"], lab["audio"],
                                                                 int(lab["image"].max()) + 1, int(lab["audio"].max()) + 1))
            log.info("k=%d clustered (%d groundings)", k, len(X["audio"]))
        f.attrs.update(params=json.dumps(params, sort_keys=True), groundings=len(X["audio"]),
                       layout="k<k>/{kmeans|random}/{audio|image}/{labels,centroids,variance}; "
                              "k<k>/{kmeans|random}/affinity (image clusters x audio clusters, eq. 2)")
    log.info("clustering: %.1f s wall, %.1f CPU s", time.perf_counter() - t0, time.process_time() - c0)


def read_clusters(path, k, kind):
    with open_h5(path) as f:
        grp = f[f"k{k}/{kind}"]
        out = {m: {d: grp[f"{m}/{d}"][:] for d in ("labels", "centroids", "variance")} for m in ("audio", "image")}
        out["affinity"] = grp["affinity"][:]
    return out


def grounding_labels(g, items, words, boxes_tsv, params):
    """Labels of every grounding: audio per word table ({source: labels}), image from GT boxes."""
    item = g["item"].astype(np.int64)
    utt = items["utt_id"].to_numpy(dtype=object)[item]
    audio = {}
    for src, w in words.items():
        labels, first, aligned = lb.segment_labels(utt, g["span"], w, params["min_word_overlap"])
        occ = lb.ngram_counts(w, items["utt_id"], max(len(str(l).split()) for l in labels if l is not None) if len(labels) else 1)
        audio[src] = {"labels": labels, "first": first, "unaligned": int((~aligned).sum()), "occurrences": occ}
    image = None
    if boxes_tsv:
        gt = read_tsv(boxes_tsv, ["image_id", "category", "x0", "y0", "x1", "y1"])
        image = lb.box_labels(items["image_id"].to_numpy(dtype=object)[item], g["box"],
                              items["width"].to_numpy()[item], items["height"].to_numpy()[item], gt, params["visual_iou"])
    return utt, audio, image


def evaluate_clustering(cls, utt, audio, image, params, sources):
    """Everything one clustering (k-means or random) gives: per-cluster tables and summaries."""
    k_aud, k_img = len(cls["audio"]["variance"]), len(cls["image"]["variance"])
    out = {"audio": {}, "variance": cls["audio"]["variance"], "affinity": cls["affinity"],
           "image_labels": cls["image"]["labels"], "image_variance": cls["image"]["variance"]}
    for src in sources:
        a = audio[src]
        t = mt.audio_clusters(cls["audio"]["labels"], a["labels"], a["first"], utt, k_aud, a["occurrences"])
        t["variance"] = cls["audio"]["variance"]
        out["audio"][src] = t
    if image is not None:
        ti = mt.image_clusters(cls["image"]["labels"], image, k_img)
        out["image"] = ti
        out["visual"] = mt.visual_summary(ti, out["audio"][sources[0]], cls["affinity"], name_forms)
    return out


def run_evaluate(groundings_h5, clusters_h5, words_tsvs, boxes_tsv, params, out_json, out_md):
    """Rule patterns_evaluate: Table 3 and Table 4 analogues (aligner and ground-truth labels), visual
    purity, each beside the random clustering with the same cluster sizes."""
    g, items, _ = read_groundings(groundings_h5)
    words = {src: read_words(p) for src, p in words_tsvs.items()}
    sources = list(words)
    utt, audio, image = grounding_labels(g, items, words, boxes_tsv, params)
    result = {"groundings": int(len(utt)), "label_sources": sources,
              "unaligned_groundings": {s: audio[s]["unaligned"] for s in sources}, "table4": [], "visual": []}
    for k in params["ks"]:
        ev = {kind: evaluate_clustering(read_clusters(clusters_h5, k, kind), utt, audio, image, params, sources)
              for kind in ("kmeans", "random")}
        for prune in [1.0, *params["prune"]]:
            var = ev["kmeans"]["variance"]
            keep = _lowest_variance(var, int(round(prune * len(var))))
            rkeep = _lowest_variance(ev["random"]["variance"], int(keep.sum()))
            cutoff = float(var[keep].max()) if keep.any() else None
            result["table4"].append({"k": k, "prune": prune, "max_variance": cutoff, **{
                kind: {s: mt.summary(ev[kind]["audio"][s], kp) for s in sources}
                for kind, kp in (("kmeans", keep), ("random", rkeep))}})
        if image is not None:
            result["visual"].append({"k": k, **{kind: ev[kind]["visual"] for kind in ("kmeans", "random")}})
        if k == params["table3"]["k"]:
            result["table3"], result["table3_k"] = _table3(ev, params["table3"]["top"], sources), k
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=_jsonable) + "\n")
    with atomic_path(out_md) as tmp:
        tmp.write_text(markdown(result))
    return result


def _lowest_variance(var, count):
    """Kept clusters: the `count` lowest-variance ones (Table 4's pruning; the random clustering is
    pruned to as many clusters)."""
    keep = np.zeros(len(var), bool)
    keep[np.argsort(var, kind="stable")[:count]] = True
    return keep


def _table3(ev, top, sources):
    """The `top` lowest-variance audio clusters of the k-means run (Table 3), and the mean purity and
    coverage of those rows beside the `top` lowest-variance clusters of the random clustering."""
    km, src = ev["kmeans"], sources[0]
    t = km["audio"][src]
    aff = ev["kmeans"].get("affinity")
    order = np.argsort(t["variance"].to_numpy(), kind="stable")[:top]
    img_size = np.bincount(km["image_labels"], minlength=len(km["image_variance"]))
    rows = []
    for c in order:
        link = int(aff[:, c].argmax())
        row = {"cluster": int(c), "label": t.at[c, "label"] or "-", "size": int(t.at[c, "size"]),
               "image_cluster_size": int(img_size[link]), "purity": t.at[c, "purity"],
               "variance": float(t.at[c, "variance"]), "coverage": t.at[c, "coverage"]}
        for s in sources[1:]:
            row[f"label_{s}"] = km["audio"][s].at[c, "label"] or "-"
            row[f"purity_{s}"] = km["audio"][s].at[c, "purity"]
        if "image" in km:
            row["visual_label"] = km["image"].at[link, "object_label"] or "(none)"
        rows.append(row)
    mean = lambda tab, idx, col: float(np.nanmean(tab[col].to_numpy()[idx])) if len(idx) else None
    rorder = np.argsort(ev["random"]["audio"][src]["variance"].to_numpy(), kind="stable")[:top]
    return {"rows": rows, "label_source": src,
            "mean": {"kmeans": {c: mean(t, order, c) for c in ("purity", "coverage")},
                     "random": {c: mean(ev["random"]["audio"][src], rorder, c) for c in ("purity", "coverage")}}}


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if np.isnan(x) else float(x)
    raise TypeError(type(x))


def _f(x, digits=3):
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def markdown(r):
    """Tables 3 and 4 and the visual table as Markdown, random clustering beside every number."""
    src, others = r["label_sources"][0], r["label_sources"][1:]
    out = []
    if "table3" in r:
        t3 = r["table3"]
        out += [f"## Table 3 analogue: the {len(t3['rows'])} lowest-variance audio clusters, k = {r['table3_k']}",
                "", f"Labels from `{src}` word segments; |Cc| audio cluster size, |Ci| size of its most associated "
                "image cluster (eq. 2), Pur purity, σ² variance, Cov coverage; '-' = silence.", ""]
        head = ["Trans", "\\|Cc\\|", "\\|Ci\\|", "Pur", "σ²", "Cov"] + [f"Trans ({s})" for s in others] + \
               [f"Pur ({s})" for s in others] + (["image cluster (GT object)"] if t3["rows"] and "visual_label" in t3["rows"][0] else [])
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in t3["rows"]:
            cells = [row["label"], row["size"], row["image_cluster_size"], _f(row["purity"], 2),
                     _f(row["variance"], 2), _f(row["coverage"], 2)]
            cells += [row[f"label_{s}"] for s in others] + [_f(row[f"purity_{s}"], 2) for s in others]
            cells += [row["visual_label"]] if "visual_label" in row else []
            out.append("| " + " | ".join(str(c) for c in cells) + " |")
        m = t3["mean"]
        out += ["", f"Mean over these rows: purity {_f(m['kmeans']['purity'])}, coverage {_f(m['kmeans']['coverage'])}; "
                f"random clustering (same sizes), its {len(t3['rows'])} lowest-variance clusters: purity "
                f"{_f(m['random']['purity'])}, coverage {_f(m['random']['coverage'])}.", ""]
    out += ["## Table 4 analogue: audio clusters by k and variance pruning", "",
            f"|C| clusters kept, |X| points kept, Pur overall purity, |L| unique labels, AC average coverage "
            f"(labels from `{src}`); kept: the share of clusters kept, lowest variance σ² first (the largest σ² kept "
            "beside it); random = the random clustering pruned to as many clusters, lowest variance first.", ""]
    head = ["k", "kept", "σ² ≤", "\\|C\\|", "\\|X\\|", "Pur", "\\|L\\|", "AC", "Pur random", "\\|L\\| random", "AC random"]
    head += [f"Pur ({s})" for s in others] + [f"Pur ({s}) random" for s in others]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in r["table4"]:
        a, b = row["kmeans"][src], row["random"][src]
        cells = [row["k"], f"{row['prune']:.0%}", _f(row["max_variance"], 2), a["clusters"], a["points"], _f(a["purity"]),
                 a["unique_labels"], _f(a["avg_coverage"]), _f(b["purity"]), b["unique_labels"], _f(b["avg_coverage"])]
        cells += [_f(row["kmeans"][s]["purity"]) for s in others] + [_f(row["random"][s]["purity"]) for s in others]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    if r["visual"]:
        out += ["", "## Image clusters against ground-truth objects", "",
                "A box's label is the GT object it overlaps at IoU ≥ 0.5 (else background). Purity over all boxes; "
                "object purity over the boxes on an object, against each cluster's most frequent object; the share of "
                "clusters holding object boxes whose most associated audio cluster (eq. 2) has a label naming that object.", "",
                "| k | purity | random | object boxes | object purity | random | audio names object | random |",
                "|---|---|---|---|---|---|---|---|"]
        for v in r["visual"]:
            a, b = v["kmeans"], v["random"]
            out.append(f"| {v['k']} | {_f(a['purity'])} | {_f(b['purity'])} | {a['object_boxes']} | "
                       f"{_f(a['object_purity'])} | {_f(b['object_purity'])} | {_f(a['linked_audio_names_object'])} | "
                       f"{_f(b['linked_audio_names_object'])} |")
    return "\n".join(out) + "\n"


def run_figures(groundings_h5, clusters_h5, fbank_h5, words_tsv, params, out):
    """Rule patterns_figures: the paper's Figs. 1-4 (out: dict fig1..fig4 -> png path), at k =
    table3.k, labels from the main aligner, random clustering beside the k-means one."""
    from . import figures as fg

    g, items, attrs = read_groundings(groundings_h5)
    grounding_params = json.loads(attrs["params"])
    words = read_words(words_tsv)
    fg.fig1_grounding(g, items, fbank_h5, words, grounding_params, out["fig1"], params["figures"]["seed"])
    k = params["table3"]["k"]
    utt, audio, _ = grounding_labels(g, items, {"aligner": words}, None, params)
    names = {"k-means": "kmeans", "random": "random"}
    cls = {n: read_clusters(clusters_h5, k, kind) for n, kind in names.items()}
    tables = {n: evaluate_clustering(c, utt, audio, None, params, ["aligner"])["audio"]["aligner"] for n, c in cls.items()}
    fg.fig2_purity_variance(tables, out["fig2"], k)
    img_tables = {n: pd.DataFrame({"size": np.bincount(c["image"]["labels"], minlength=len(c["image"]["variance"])),
                                   "variance": c["image"]["variance"]}) for n, c in cls.items()}
    linked = {n: tables[n]["label"].to_numpy()[c["affinity"].argmax(1)] for n, c in cls.items()}
    fg.fig3_image_clusters(g, items, img_tables, {n: c["image"]["centroids"] for n, c in cls.items()},
                           {n: c["image"]["labels"] for n, c in cls.items()}, linked, out["fig3"],
                           params["figures"]["image_clusters"], params["figures"]["crops"])
    fg.fig4_tsne({n: c["audio"]["centroids"] for n, c in cls.items()}, tables, out["fig4"],
                 params["figures"]["tsne_top"], params["figures"]["seed"])
