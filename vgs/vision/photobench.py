"""Region features on photo-size images, old vs new settings (a benchmark script, not a test).

    python -m vgs.vision.photobench --images DIR_OR_MANIFEST --models resources/models \
        --setting old --setting new [--first N] [--boxes boxes.tsv] --out DIR

Runs the vision_regions stage (vgs.vision.stage.build_regions, one thread) over the first N
images with each named setting of SETTINGS merged over config.yaml's `vision:` section (image
paths of a manifest are relative to the current directory, as in a Snakemake workdir), and
prints per setting the CPU seconds per image, selective-search boxes, candidates scored, and,
with ground-truth boxes (a generated corpus's ground_truth/boxes.tsv), the proposal coverage of
vgs.vision.quality.  Writes DIR/<setting>/regions.h5 + regions_stats.json and DIR/photobench.json."""
import argparse
import json
from pathlib import Path

import pandas as pd
import yaml

from .encoder import native_size
from .quality import proposal_quality
from .stage import build_regions

REPO = Path(__file__).resolve().parents[2]
# What real photos got before issue 14 (old) and now (new); the two mixed ones isolate each lever.
SETTINGS = {
    "old": {"strategy": "fast", "max_side": 500, "scoring": "crops"},
    "ss250": {"strategy": "fast", "max_side": 250, "scoring": "crops"},
    "convmap500": {"strategy": "fast", "max_side": 500, "scoring": "convmap"},
    "new": {"strategy": "fast", "max_side": 250, "scoring": "convmap"},
}


def manifest(images, first, out):
    """An image manifest (image_id, path) of the first `first` images of a manifest or folder."""
    p = Path(images)
    if p.is_dir():
        paths = sorted(p.glob("*.jpg")) + sorted(p.glob("*.png"))
        df = pd.DataFrame({"image_id": [x.stem for x in paths], "path": [str(x) for x in paths]})
    else:
        df = pd.read_csv(p, sep="\t", dtype=str)[["image_id", "path"]]
    df = df.iloc[:first] if first else df
    df.to_csv(out, sep="\t", index=False)
    return len(df)


def params(setting):
    v = yaml.safe_load((REPO / "config.yaml").read_text())["vision"]
    v = {k: x for k, x in v.items() if k not in ("threads", "gpus", "convmap", "quality_iou", "figure_images")}
    v.update(SETTINGS[setting])
    v["input_size"] = v["input_size"] or native_size(v["encoder"])
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", required=True, help="a folder of .jpg/.png or an image manifest TSV")
    ap.add_argument("--models", default=str(REPO / "resources/models"))
    ap.add_argument("--setting", action="append", choices=sorted(SETTINGS), required=True)
    ap.add_argument("--first", type=int, default=0, help="only the first N images (0: all)")
    ap.add_argument("--boxes", help="ground-truth boxes TSV: report proposal coverage")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n = manifest(a.images, a.first, out / "images.tsv")
    results = {}
    for s in a.setting:
        p, d = params(s), out / s
        d.mkdir(exist_ok=True)
        models = Path(a.models)
        st = build_regions(out / "images.tsv", models / f"efficientnet-{p['encoder']}-{p['input_size']}.onnx",
                           d / "regions.h5", d / "regions_stats.json", p, threads=1,
                           score_onnx=models / f"efficientnet-{p['encoder']}-{p['score_map_size']}.onnx")
        r = {"images": n, **SETTINGS[s], **{k: st[k] for k in (
            "cpu_s_per_image", "s_per_image", "mean_selective_search_boxes", "mean_candidates_scored",
            "mean_proposals_kept", "proposal_thread_s_per_image", "cnn_s_per_image", "load_avg_1min")}}
        if a.boxes:
            q = proposal_quality(d / "regions.h5", a.boxes)
            r.update({k: q[k] for k in ("objects", "coverage_kept_detections", "coverage_smaller_half",
                                        "coverage_larger_half", "mean_best_iou", "top1_plausible")})
        results[s] = r
        print(json.dumps({s: r}), flush=True)
    (out / "photobench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(pd.DataFrame(results).T.to_markdown())


if __name__ == "__main__":
    main()
