"""Cluster purity and coverage (2017 paper sec. 5) and the visual purity against ground truth.

Audio: a cluster's label is its members' most frequent label string (majority vote; ties go to the
alphabetically first); a member matches when the cluster label appears in its label string as a
run of whole words ("the lighthouse" matches "lighthouse"; "" = silence matches only silence).
Purity = matching members / members with a label.  Coverage = distinct occurrences of the label
(caption, word position) captured by matching members / its occurrences in the split's
transcripts.  Members whose caption the word table lacks (aligner failures) carry no label.
Images: a cluster's label is its boxes' most frequent GT category ("" = background); purity is the
plain share of members with that label; object purity counts only boxes on an object, against the
most frequent object of the cluster (defined for a random clustering too)."""
import numpy as np
import pandas as pd


def majority(cluster, labels, k):
    """Most frequent label of each cluster (k,) object array ('' for an empty cluster)."""
    ok = pd.notna(labels)
    df = pd.DataFrame({"c": cluster[ok], "l": labels[ok]})
    top = (df.groupby(["c", "l"]).size().rename("n").reset_index()
           .sort_values(["c", "n", "l"], ascending=[True, False, True], kind="stable").drop_duplicates("c"))
    out = np.full(k, "", dtype=object)
    out[top["c"].to_numpy()] = top["l"].to_numpy()
    return out


def contains(member, label):
    """Element-wise: does label (a word string, '' = silence) occur in member as whole words?"""
    m = np.asarray(member, dtype=str)
    l = np.asarray(label, dtype=str)
    found = np.char.find(np.char.add(np.char.add(" ", m), " "), np.char.add(np.char.add(" ", l), " ")) >= 0
    return np.where(l == "", m == "", found)


def audio_clusters(cluster, labels, first, utt_ids, k, occurrences):
    """Per-cluster table: size, labelled, label, matches, purity, coverage (NaN for silence)."""
    cluster = np.asarray(cluster)
    ok = pd.notna(labels)
    lab = majority(cluster, labels, k)
    hit = np.zeros(len(cluster), bool)
    hit[ok] = contains(labels[ok].astype(str), lab[cluster[ok]].astype(str))
    size = np.bincount(cluster, minlength=k)
    labelled = np.bincount(cluster[ok], minlength=k)
    matches = np.bincount(cluster[hit], minlength=k)
    # distinct occurrences captured: (caption, word index of the label inside the member's words)
    idx = np.flatnonzero(hit & (lab[cluster] != ""))
    offset = [m[: m.find(f" {l} ") + 1].count(" ") - 1
              for m, l in zip((" " + labels[idx].astype(str) + " ").tolist(), lab[cluster[idx]].tolist())]
    occ = pd.DataFrame({"c": cluster[idx], "utt": np.asarray(utt_ids, dtype=object)[idx],
                        "pos": first[idx] + np.asarray(offset, np.int64)}).drop_duplicates()
    captured = np.bincount(occ["c"].to_numpy(np.int64), minlength=k)
    total = np.array([occurrences.get(l, 0) if l else 0 for l in lab], np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(labelled > 0, matches / np.maximum(labelled, 1), np.nan)
        coverage = np.where((lab != "") & (total > 0), np.minimum(captured / total, 1.0), np.nan)
    return pd.DataFrame({"size": size, "labelled": labelled, "label": lab, "matches": matches,
                         "purity": purity, "coverage": coverage})


def summary(table, keep=None):
    """Table 4 cells of the kept clusters: |C|, |X|, overall purity, unique labels, average coverage."""
    t = table[table["size"] > 0] if keep is None else table[np.asarray(keep) & (table["size"] > 0).to_numpy()]
    words = t["label"] != ""
    return {"clusters": int(len(t)), "points": int(t["size"].sum()),
            "purity": float(t["matches"].sum() / max(t["labelled"].sum(), 1)),
            "unique_labels": int(t.loc[words, "label"].nunique()),
            "avg_coverage": float(t.loc[words, "coverage"].mean()) if words.any() else None}


def image_clusters(cluster, labels, k):
    """Per-cluster table of image clusters: size, label (majority GT category, '' = background),
    matches, and over the members that hit an object: objects, object_label (their majority),
    object_matches."""
    cluster, labels = np.asarray(cluster), np.asarray(labels, dtype=object)
    lab = majority(cluster, labels, k)
    obj = labels != ""
    olab = majority(cluster[obj], labels[obj], k)
    return pd.DataFrame({"size": np.bincount(cluster, minlength=k), "label": lab,
                         "matches": np.bincount(cluster[labels == lab[cluster]], minlength=k),
                         "objects": np.bincount(cluster[obj], minlength=k), "object_label": olab,
                         "object_matches": np.bincount(cluster[obj & (labels == olab[cluster])], minlength=k)})


def visual_summary(img_table, aud_table, aff, name_forms):
    """Purity of the image clusters against GT (all boxes; boxes on objects only) and, for each
    cluster holding object boxes, whether the label of its most associated audio cluster (eq. 2)
    names its object label."""
    t = img_table[img_table["size"] > 0]
    obj = t[t["objects"] > 0]
    link = aff.argmax(1)
    names = [bool(set(str(aud_table["label"].iloc[link[i]]).split()) & name_forms(lbl))
             for i, lbl in obj["object_label"].items()]
    return {"purity": float(t["matches"].sum() / max(t["size"].sum(), 1)),
            "object_boxes": int(t["objects"].sum()),
            "object_purity": float(obj["object_matches"].sum() / max(obj["objects"].sum(), 1)) if len(obj) else None,
            "clusters_with_objects": int(len(obj)),
            "linked_audio_names_object": float(np.mean(names)) if names else None}
