"""Entry points of the vision rules: region store, conv-map store, ONNX export."""
import json
import logging
import os
import time
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from vgs.cache import read_json, read_tsv
from vgs.runtime import atomic_path, concat_h5, file_signature, open_h5, shard_slice

from . import encoder as enc
from . import proposals as prop
from .regions import BadImage, extract, load_image
from .store import RegionWriter

log = logging.getLogger(__name__)


def read_manifest(path):
    return read_tsv(path, ["image_id", "path"], unique="image_id")


def _check_skips(skipped, n_total, max_fraction, what):
    """Too many undecodable images (ingest decoded each: a file changed since) is an error naming them."""
    if n_total and len(skipped) / n_total > max_fraction:
        raise RuntimeError(f"{what}: {len(skipped)}/{n_total} images undecodable (> max_bad_fraction "
                           f"{max_fraction}): {'; '.join(s['error'] for s in skipped[:3])}")


def build_regions(manifest, onnx_path, out_h5, stats_json, params, threads=1, shard=None,
                  score_onnx=None):
    """results/vision/regions.h5 from the image manifest (see vgs.vision.store for the layout),
    or, with `shard` ("i-of-k"), the region store of that slice of it; the undecodable-image
    limit is then checked by merge_regions over all shards.  `score_onnx`: the encoder at
    score_map_size whose conv map scores the candidates (params scoring: convmap)."""
    df = read_manifest(manifest)
    df = df.iloc[shard_slice(len(df), shard)]
    runner = enc.OnnxEncoder(onnx_path, threads)
    scorer = None
    if params["scoring"] == "convmap":
        if not score_onnx:
            raise ValueError("scoring: convmap needs the score-map encoder (score_onnx)")
        scorer = enc.OnnxEncoder(score_onnx, threads)
    attrs = dict(encoder=f"efficientnet-{params['encoder']}", input_size=runner.size,
                 feature_dim=enc.FEATURE_DIM, regions=params["detections"] + 1,
                 config=json.dumps(params, sort_keys=True),
                 substitution="EfficientNet-Lite (ImageNet) instead of the paper's R-CNN/VGG fc7",
                 layout="row 0 = whole frame; rows 1..n_proposals = detections, best first; "
                        "later rows = copies of row 0")
    writer = RegionWriter(out_h5, attrs, params["detections"] + 1, enc.FEATURE_DIM, params["top_k"],
                          params["hdf5"]["chunk_images"], params["hdf5"]["gzip_level"],
                          sources={i: file_signature(p) for i, p in zip(df["image_id"], df["path"])})
    todo = [(i, p) for i, p in zip(df["image_id"], df["path"]) if i not in writer.done_ids]
    log.info("%d images in %s%s, %d to do (%d resumed), encoder %s at %d px, %d threads",
             len(df), manifest, f" shard {shard}" if shard else "", len(todo), len(df) - len(todo),
             params["encoder"], runner.size, threads)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with tqdm(total=len(todo), desc="regions", unit="img", mininterval=5) as bar:
            stats = extract(todo, runner, params, writer.add, threads, bar, scorer)
        if shard is None:
            _check_skips(stats["skipped"], len(df), params["max_bad_fraction"], manifest)
        stats.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                     resumed=len(df) - len(todo), manifest_images=len(df))
        writer.publish({"skipped": json.dumps(stats["skipped"])})
    except BaseException:
        writer.close()
        raise
    return regions_report(stats, params, runner.size, threads, out_h5, stats_json)


def regions_report(totals, params, size, threads, h5_path, stats_json):
    """regions_stats.json: the counts and means over the images the store holds, read from it (so a
    resumed run, a shard merge and one uninterrupted run agree); the speeds of this run from its
    additive totals (those of extract() + wall_s, cpu_s, resumed, manifest_images), kept under
    `totals` so that shards' reports can be summed."""
    t, n = totals, totals["images"]
    bytes_ = Path(h5_path).stat().st_size
    with open_h5(h5_path) as h5:
        n_total = h5["image_ids"].shape[0]
        stored = {k: h5[k][:].astype(np.int64) for k in ("n_proposals", "n_raw_boxes", "n_candidates")}
    # crops encoded per image: the whole frame and every candidate (scoring crops), or the whole
    # frame and the kept detections (scoring convmap: candidates are scored from the conv map)
    crops = stored["n_proposals"] if params["scoring"] == "convmap" else stored["n_candidates"]
    t = {**t, "raw_boxes": int(stored["n_raw_boxes"].sum()), "candidates": int(stored["n_candidates"].sum()),
         "proposals": int(stored["n_proposals"].sum()), "crops_stored": int(crops.sum() + n_total),
         "padded_images": int((stored["n_proposals"] < params["detections"]).sum())}
    m = n_total
    report = dict(
        encoder=params["encoder"], input_size=size, strategy=params["strategy"],
        scoring=params["scoring"], threads=threads,
        images_total=n_total, images_this_run=n, resumed=t["resumed"], skipped=t["skipped"],
        wall_s=round(t["wall_s"], 2), images_per_s=round(n / t["wall_s"], 3) if t["wall_s"] else None,
        s_per_image=round(t["wall_s"] / n, 3) if n else None,
        # CPU seconds of this process (all threads): with cores shared, wall time overstates cost
        cpu_s_per_image=round(t["cpu_s"] / n, 3) if n else None, load_avg_1min=round(os.getloadavg()[0], 2),
        crops_per_s=round(t["crops"] / t["cnn_s"], 1) if t["cnn_s"] else None,
        mean_selective_search_boxes=round(t["raw_boxes"] / max(m, 1), 1),
        mean_candidates_scored=round(t["candidates"] / max(m, 1), 1),
        mean_crops_encoded=round(t["crops_stored"] / max(m, 1), 1),
        mean_proposals_kept=round(t["proposals"] / max(m, 1), 2),
        padded_images=t["padded_images"],
        proposal_thread_s_per_image=round(t["proposal_s"] / max(n, 1), 3),
        cnn_s_per_image=round(t["cnn_s"] / max(n, 1), 3),
        hdf5_bytes=bytes_, hdf5_mb_per_1000_images=round(bytes_ / max(n_total, 1) * 1000 / 2**20, 2),
        totals=totals,
    )
    log.info("regions: %s", json.dumps({k: v for k, v in report.items() if k not in ("totals", "skipped")}))
    with atomic_path(stats_json) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _sum_totals(stats_jsons):
    parts = [read_json(p, ["totals", "input_size", "threads"]) for p in stats_jsons]
    totals = {k: [x for p in parts for x in p["totals"][k]] if k == "skipped"
              else sum(p["totals"][k] for p in parts) for k in parts[0]["totals"]}
    return parts[0], totals


def merge_regions(shard_h5s, shard_stats, out_h5, stats_json, params):
    """regions.h5 and regions_stats.json from the shards' (build_regions with shard=...):
    rows concatenated in shard (= manifest) order, chunk by chunk; the same file as one run."""
    first, totals = _sum_totals(shard_stats)
    _check_skips(totals["skipped"], totals["manifest_images"], params["max_bad_fraction"],
                 "vision_regions")
    with open_h5(shard_h5s[0]) as h5:
        attrs = dict(h5.attrs)
    n = 0
    for p in shard_h5s:
        with open_h5(p) as h5:
            n += h5["image_ids"].shape[0]
    attrs.update(n_done=n, n_images=n, skipped=json.dumps(totals["skipped"]))
    concat_h5(shard_h5s, out_h5, attrs, params["hdf5"]["chunk_images"])
    return regions_report(totals, params, first["input_size"], first["threads"], out_h5, stats_json)


def _gzip(level):
    return dict(compression="gzip", compression_opts=level, shuffle=True) if level else {}


def build_convmap(manifest, onnx_path, out_h5, params, threads=1, shard=None):
    """results/vision/convmap.h5: the whole image's last-conv-stage map at convmap.size px (or,
    with `shard`, the maps of that slice of the manifest; merge_convmap joins them).

    Layout: image_ids (N,) str; convmap (N, C, H, W) (C = 1280, H = W = size / 32, dtype from
    config); attrs encoder, input_size, stride 32, complete, manifest_images.  Undecodable images
    are skipped (listed in attrs['skipped'])."""
    df = read_manifest(manifest)
    df = df.iloc[shard_slice(len(df), shard)]
    runner = enc.OnnxEncoder(onnx_path, threads)
    cfg, size, bs = params["convmap"], runner.size, params["batch_size"]
    dtype = np.dtype(cfg["dtype"])
    ids, skipped, t0 = [], [], time.perf_counter()
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        batch = []

        def flush():
            x = enc.preprocess(np.stack([im for _, im in batch]))
            fm = runner.run(x, ("convmap",), bs)["convmap"]
            if "convmap" not in h5:  # shape known after the first batch: (C, H, W)
                h5.create_dataset("convmap", (0, *fm.shape[1:]), dtype, maxshape=(None, *fm.shape[1:]),
                                  chunks=(1, *fm.shape[1:]), **_gzip(params["hdf5"]["gzip_level"]))
            d = h5["convmap"]
            n0 = d.shape[0]
            d.resize(n0 + len(batch), axis=0)
            d[n0:] = fm.astype(dtype)
            ids.extend(i for i, _ in batch)
            batch.clear()

        for image_id, path in tqdm(list(zip(df["image_id"], df["path"])), desc="convmap", mininterval=5):
            try:
                batch.append((image_id, prop.full_frame(load_image(path), size)))
            except BadImage as e:
                log.warning("skipping image %s: %s", image_id, e)
                skipped.append({"image_id": image_id, "error": str(e)})
            if len(batch) >= bs:
                flush()
        if batch:
            flush()
        if shard is None:
            _check_skips(skipped, len(df), params["max_bad_fraction"], manifest)
        h5.create_dataset("image_ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        h5.attrs.update(encoder=f"efficientnet-{params['encoder']}", input_size=size, stride=32,
                        layout="convmap[n] = (C, H, W) map of image_ids[n], whole frame resized to input_size",
                        skipped=json.dumps(skipped), manifest_images=len(df), complete=True)
    wall = time.perf_counter() - t0
    log.info("convmap: %d images (%d skipped) in %.1f s = %.1f img/s, %s maps at %d px",
             len(ids), len(skipped), wall, len(ids) / max(wall, 1e-9), dtype, size)


def merge_convmap(shard_h5s, out_h5, params):
    """convmap.h5 from the shards' (build_convmap with shard=...), rows in manifest order."""
    skipped, total = [], 0
    for p in shard_h5s:
        with open_h5(p) as h5:
            skipped += json.loads(h5.attrs["skipped"])
            total += int(h5.attrs["manifest_images"])
    _check_skips(skipped, total, params["max_bad_fraction"], "vision_convmap")
    concat_h5(shard_h5s, out_h5, {"skipped": json.dumps(skipped), "manifest_images": total}, block_rows=64)
    log.info("convmap: %d shards merged, %d images, %d skipped", len(shard_h5s), total - len(skipped),
             len(skipped))


def export(encoder, size, out_onnx):
    """Export the ONNX encoder atomically (the exporter wants a real .onnx path, hence our own tmp)."""
    out = Path(out_onnx)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.stem}.tmp-{os.getpid()}.onnx")
    try:
        err = enc.export_onnx(encoder, size, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return err
