"""Vision stage: proposals, NMS, warps, the region store (layout, torch agreement, bad images,
resume) and the proposal-quality metric, on small Pillow-drawn images."""
import json
import shutil

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from vgs.vision import encoder as enc
from vgs.vision import proposals as prop
from vgs.runtime import file_signature
from vgs.vision import quality, regions, stage, store

PARAMS = dict(encoder="lite0", input_size=224, detections=19, strategy="single", max_side=500,
              ss_k=200, ss_sigma=0.8, min_side_frac=0.1, min_area_frac=0.02, dedup_iou=0.8,
              max_candidates=12, scoring="crops", context_pad=16, nms_iou=0.5, nms_per_class=True, top_k=5,
              batch_size=32, max_bad_fraction=0.5, hdf5=dict(chunk_images=2, gzip_level=4),
              convmap=dict(size=448, dtype="float16"))


def scene(seed, w=200, h=150):
    """A noisy background with a few filled shapes (distinct colours make selective search work)."""
    rng = np.random.default_rng(seed)
    bg = np.clip(rng.normal(120, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(bg)
    d = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.integers(0, w * 2 // 3), rng.integers(0, h * 2 // 3)
        s = int(rng.integers(30, 60))
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x0 + s, y0 + s], fill=col)
    return im


@pytest.fixture(scope="session")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "efficientnet-lite0-224.onnx"
    err = stage.export("lite0", 224, path)
    assert max(err.values()) < 1e-3
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rows = []
    for i in range(4):
        p = root / f"img{i}.jpg"
        scene(i, w=200 + 40 * i).save(p, quality=92)
        rows.append(dict(image_id=f"img{i}", path=str(p), split="train", width=200 + 40 * i, height=150))
    good = pd.DataFrame(rows)
    good.to_csv(root / "images.tsv", sep="\t", index=False)
    # a truncated JPEG and a text file posing as one
    data = (root / "img0.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "notjpeg.jpg").write_text("this is not an image")
    bad = pd.concat([good.iloc[:2], pd.DataFrame([
        dict(image_id="truncated", path=str(root / "truncated.jpg"), split="train", width=200, height=150),
        dict(image_id="notjpeg", path=str(root / "notjpeg.jpg"), split="train", width=200, height=150),
    ]), good.iloc[2:]])
    bad.to_csv(root / "with_bad.tsv", sep="\t", index=False)
    return root


@pytest.fixture(scope="session")
def built(corpus, onnx_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    report = stage.build_regions(corpus / "with_bad.tsv", onnx_path, out / "regions.h5",
                                 out / "stats.json", PARAMS, threads=1)
    return out, report


# --- proposals -------------------------------------------------------------------------------

def test_nms_hand_made_boxes():
    boxes = np.array([[0, 0, 10, 10],     # 0: best
                      [1, 1, 11, 11],     # 1: IoU 81/119 = 0.68 with 0
                      [20, 20, 30, 30],   # 2: disjoint
                      [5, 0, 15, 10]])    # 3: IoU 50/150 = 0.33 with 0, 54/146 = 0.37 with 1
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert prop.nms(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert prop.nms(boxes, scores, 0.3).tolist() == [0, 2]
    assert prop.nms(boxes, scores, 0.7).tolist() == [0, 1, 2, 3]
    assert prop.nms(boxes, scores, 0.5, max_keep=2).tolist() == [0, 2]
    # order follows score, not input position; ties keep the earlier box
    assert prop.nms(boxes, scores[::-1].copy(), 0.5).tolist() == [3, 2, 1]
    assert prop.nms(boxes[:2], np.array([0.5, 0.5]), 0.5).tolist() == [0]
    assert prop.iou_matrix(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)


def test_per_class_nms_keeps_overlapping_boxes_of_other_classes():
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [0, 0, 90, 100]])
    logits = np.full((4, 1000), -10.0)  # row 0 = whole frame
    logits[0, 7], logits[1, 1], logits[2, 2], logits[3, 1] = 5, 9, 8, 7
    feats = np.arange(4 * 3, dtype=np.float32).reshape(4, 3)
    p = dict(PARAMS, detections=3, top_k=2)
    per = regions.select_regions(120, 110, boxes, feats, logits, dict(p, nms_per_class=True))
    agn = regions.select_regions(120, 110, boxes, feats, logits, dict(p, nms_per_class=False))
    assert per["n_proposals"] == 2 and agn["n_proposals"] == 1  # box 2 (class 2) survives only per class
    assert per["boxes"][:3].tolist() == [[0, 0, 120, 110], [0, 0, 100, 100], [5, 5, 105, 105]]
    assert per["top_classes"][1, 0] == 1 and per["top_classes"][2, 0] == 2
    np.testing.assert_array_equal(per["features"][3], feats[0])  # padding = whole frame
    np.testing.assert_array_equal(agn["boxes"][2], agn["boxes"][0])


def test_proposals_are_deterministic_and_filtered():
    img = np.asarray(scene(7, 240, 180))
    a, b = prop.selective_search(img, "single"), prop.selective_search(img, "single")
    np.testing.assert_array_equal(a, b)
    assert len(a) > 5
    assert (np.lexsort(a.T[::-1]) == np.arange(len(a))).all()  # canonical (sorted) order
    c1, n1 = regions.propose(img, PARAMS)
    c2, n2 = regions.propose(img, PARAMS)
    np.testing.assert_array_equal(c1, c2)
    bw, bh = c1[:, 2] - c1[:, 0], c1[:, 3] - c1[:, 1]
    assert (np.minimum(bw, bh) >= 0.1 * 180).all() and (bw * bh >= 0.02 * 240 * 180).all()
    assert len(c1) <= PARAMS["max_candidates"] and n1 == len(a)
    assert (prop.iou_matrix(c1, c1)[~np.eye(len(c1), dtype=bool)] <= 0.8).all()


def test_context_warp_geometry():
    # box 100x100 at (50, 50); 16 px of context at 224 => 16 * 100 / 192 = 8.33 px each side
    np.testing.assert_array_equal(prop.context_boxes([[50, 50, 150, 150]], 224, 16), [[42, 42, 158, 158]])
    img = np.zeros((200, 200, 3), np.uint8)
    img[50:150, 50:150] = 255
    crop = prop.warp_regions(img, [[50, 50, 150, 150]], 224, 16)[0]
    assert crop[20:204, 20:204].min() >= 250  # the box fills the inside ...
    assert crop[:12].max() <= 5 and crop[:, :12].max() <= 5  # ... its surroundings the border
    # a box at the image edge gets the fill value (127 -> 0 after preprocessing) outside the image
    edge = prop.warp_regions(img, [[0, 0, 100, 100]], 224, 16, fill=127)[0]
    assert (edge[:10, :10] == 127).all()


# --- region store -----------------------------------------------------------------------------

def test_full_frame_feature_equals_direct_torch_forward(built, corpus):
    import torch

    out, _ = built
    reg = store.read_regions(out / "regions.h5")
    model = enc.load_torch("lite0", 224)
    for i, iid in enumerate(reg["image_ids"][:2]):
        img = np.asarray(Image.open(corpus / f"{iid}.jpg").convert("RGB"))
        assert img.shape[0] < 224  # enlarged, so bilinear (INTER_AREA is for shrinking)
        x = cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = torch.from_numpy((x - 127) / 128).permute(2, 0, 1)[None]
        with torch.no_grad():
            fmap = model.extract_features(x)
            ref = fmap.mean(dim=(2, 3))[0].numpy()
            logits = model(x)[0].numpy()
        np.testing.assert_allclose(reg["features"][i, 0], ref, rtol=0, atol=1e-4 * max(1, np.abs(ref).max()))
        assert reg["top_classes"][i, 0, 0] == logits.argmax()
        np.testing.assert_allclose(reg["top_probs"][i, 0], np.sort(enc.softmax(logits))[::-1][:5], atol=1e-5)


def test_region_store_layout(built):
    out, report = built
    with h5py.File(out / "regions.h5", "r") as h5:
        assert h5.attrs["complete"] and h5.attrs["encoder"] == "efficientnet-lite0"
        assert json.loads(h5.attrs["config"])["nms_iou"] == 0.5
        shapes = {k: (h5[k].shape, h5[k].dtype.str) for k in h5}
        assert h5["features"].compression == "gzip" and h5["features"].chunks[0] == 2
    n = 4
    assert shapes["features"] == ((n, 20, 1280), "<f4")
    assert shapes["boxes"] == ((n, 20, 4), "<f4")
    assert shapes["scores"] == ((n, 20), "<f4")
    assert shapes["top_classes"] == ((n, 20, 5), "<i2")
    assert shapes["top_probs"] == ((n, 20, 5), "<f4")
    assert shapes["n_proposals"][0] == (n,) and shapes["image_ids"][0] == (n,)
    reg = store.read_regions(out / "regions.h5")
    assert list(reg["image_ids"]) == ["img0", "img1", "img2", "img3"]  # manifest order, bad ones out
    widths = np.array([200, 240, 280, 320])
    np.testing.assert_array_equal(reg["boxes"][:, 0], np.stack([[0, 0, w, 150] for w in widths]))
    assert (reg["boxes"][..., 2] <= widths[:, None]).all() and (reg["boxes"][..., :2] >= 0).all()
    np.testing.assert_allclose(reg["scores"], reg["top_probs"][..., 0], atol=1e-6)
    assert (np.diff(reg["top_probs"], axis=2) <= 0).all()
    for i, n_real in enumerate(reg["n_proposals"]):
        assert 1 <= n_real <= 19
        s = reg["scores"][i, 1:n_real + 1]
        assert (np.diff(s) <= 1e-7).all()  # detections best first
        np.testing.assert_array_equal(reg["features"][i, n_real + 1:], np.broadcast_to(
            reg["features"][i, 0], (19 - n_real, 1280)))
    assert report["images_total"] == 4 and report["images_per_s"] > 0
    assert report["hdf5_mb_per_1000_images"] > 0


def test_corrupt_images_are_named_errors_or_counted_skips(built, corpus, onnx_path, tmp_path):
    with pytest.raises(regions.BadImage, match="truncated.jpg"):
        regions.load_image(corpus / "truncated.jpg")
    with pytest.raises(regions.BadImage, match="notjpeg.jpg"):
        regions.load_image(corpus / "notjpeg.jpg")
    _, report = built
    assert sorted(s["image_id"] for s in report["skipped"]) == ["notjpeg", "truncated"]
    assert all(s["image_id"] in s["error"] for s in report["skipped"])
    # too many bad images: a clear failure, and no file that looks complete
    with pytest.raises(RuntimeError, match="2/6 images undecodable"):
        stage.build_regions(corpus / "with_bad.tsv", onnx_path, tmp_path / "r.h5", tmp_path / "s.json",
                            dict(PARAMS, max_bad_fraction=0.2))
    assert not (tmp_path / "r.h5").exists()


def test_resume_after_interruption_gives_identical_store(built, corpus, onnx_path, tmp_path):
    out, _ = built
    # a run that died after two images: their rows sit in the .partial file
    h5 = tmp_path / "regions.h5"
    items = [("img0", str(corpus / "img0.jpg")), ("img1", str(corpus / "img1.jpg"))]
    w = store.RegionWriter(h5, {"config": json.dumps(PARAMS, sort_keys=True), "encoder": "x"},
                           20, 1280, 5, chunk=2, sources={i: file_signature(p) for i, p in items})
    runner = enc.OnnxEncoder(onnx_path)
    regions.extract(items, runner, PARAMS, w.add)
    w.close()
    assert (tmp_path / "regions.h5.partial").exists() and not h5.exists()
    report = stage.build_regions(corpus / "images.tsv", onnx_path, h5, tmp_path / "s.json", PARAMS)
    assert report["resumed"] == 2 and report["images_this_run"] == 2 and report["images_total"] == 4
    # the report's counts are over the stored images (the same four as the uninterrupted store's),
    # not over the two computed after the resume
    stored = ("images_total", "mean_selective_search_boxes", "mean_candidates_scored", "mean_crops_encoded",
              "mean_proposals_kept", "padded_images")
    _, uninterrupted = built
    assert {k: report[k] for k in stored} == {k: uninterrupted[k] for k in stored}
    a, b = store.read_regions(h5), store.read_regions(out / "regions.h5")
    assert list(a["image_ids"]) == list(b["image_ids"])
    for k in ("boxes", "n_proposals", "top_classes"):
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_allclose(a["features"], b["features"], atol=1e-4)


def test_resume_keeps_only_rows_of_images_still_listed_with_the_same_file(built, corpus, onnx_path, tmp_path):
    """Issue 15, item 8: killed after three images, then the corpus changed (same vision config):
    one image is no longer listed, one was replaced in place.  Only the third row is resumed."""
    out, _ = built
    img = tmp_path / "img"
    shutil.copytree(corpus, img)
    listed = pd.read_csv(img / "images.tsv", sep="\t").assign(path=lambda d: d.image_id.map(lambda i: str(img / f"{i}.jpg")))
    listed.to_csv(img / "images.tsv", sep="\t", index=False)
    items = [("old", str(img / "img3.jpg")), ("img0", str(img / "img0.jpg")), ("img1", str(img / "img1.jpg"))]
    h5 = tmp_path / "regions.h5"
    w = store.RegionWriter(h5, {"config": json.dumps(PARAMS, sort_keys=True), "encoder": "x"},
                           20, 1280, 5, chunk=1, sources={i: file_signature(p) for i, p in items})
    regions.extract(items, enc.OnnxEncoder(onnx_path), PARAMS, w.add)
    w.close()
    scene(2, w=200).save(img / "img0.jpg", quality=92)  # replaced in place: other content
    report = stage.build_regions(img / "images.tsv", onnx_path, h5, tmp_path / "s.json", PARAMS)
    assert (report["resumed"], report["images_this_run"], report["images_total"]) == (1, 3, 4)
    got, ref = store.read_regions(h5), store.read_regions(out / "regions.h5")
    assert list(got["image_ids"]) == ["img1", "img0", "img2", "img3"]  # resumed rows first
    assert list(got["sources"]) == [file_signature(img / f"{i}.jpg") for i in got["image_ids"]]
    ref_row = {i: k for k, i in enumerate(ref["image_ids"])}
    np.testing.assert_allclose(got["features"][0], ref["features"][ref_row["img1"]], atol=1e-4)
    assert not np.allclose(got["features"][1], ref["features"][ref_row["img0"]], atol=1e-2)  # recomputed


def test_a_damaged_partial_store_starts_afresh(corpus, onnx_path, tmp_path):
    (tmp_path / "regions.h5.partial").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    report = stage.build_regions(corpus / "images.tsv", onnx_path, tmp_path / "regions.h5", tmp_path / "s.json", PARAMS)
    assert report["resumed"] == 0 and report["images_total"] == 4


def test_convmap_store(corpus, onnx_path, tmp_path):
    out = tmp_path / "convmap.h5"
    stage.build_convmap(corpus / "images.tsv", onnx_path, out, dict(PARAMS, batch_size=3))
    with h5py.File(out, "r") as h5:
        assert h5["convmap"].shape == (4, 1280, 7, 7) and h5["convmap"].dtype == np.float16
        assert list(h5["image_ids"].asstr()[:]) == ["img0", "img1", "img2", "img3"]
        cm = h5["convmap"][:].astype(np.float32)
    # its spatial mean is the whole-frame feature
    ref = enc.OnnxEncoder(onnx_path).run(enc.preprocess(np.stack([prop.full_frame(
        regions.load_image(corpus / f"img{i}.jpg"), 224) for i in range(4)])), ("features",))["features"]
    np.testing.assert_allclose(cm.mean(axis=(2, 3)), ref, atol=2e-2)


def test_box_means_are_exact_area_weighted_means():
    f = np.random.default_rng(0).normal(size=(3, 4, 5))  # C=3 over a 4x5 grid; image 50x40: 10 px cells
    np.testing.assert_allclose(prop.box_means(f, [[10, 0, 30, 20]], 50, 40)[0], f[:, :2, 1:3].mean((1, 2)))
    np.testing.assert_allclose(prop.box_means(f, [[5, 0, 15, 10]], 50, 40)[0], f[:, 0, :2].mean(1))  # half cells
    np.testing.assert_allclose(prop.box_means(f, [[0, 0, 50, 40]], 50, 40)[0], f.mean((1, 2)))
    np.testing.assert_allclose(prop.box_means(f, [[12, 10, 17, 13]], 50, 40)[0], f[:, 1, 1])  # inside one cell


def test_convmap_scoring_crops_only_the_kept_detections(corpus, onnx_path, tmp_path):
    """scoring: convmap ranks every candidate by its box's mean over one conv map through the
    model's own classifier (whole box = the model's own logits), then encodes only the kept."""
    runner = enc.OnnxEncoder(onnx_path)
    W, b = runner.head()
    img = regions.load_image(corpus / "img2.jpg")
    out = runner.run(enc.preprocess(prop.full_frame(img, 224)[None]), ("convmap", "features", "logits"))
    whole = prop.box_means(out["convmap"][0], [[0, 0, img.shape[1], img.shape[0]]], img.shape[1], img.shape[0])
    np.testing.assert_allclose(whole[0], out["features"][0], atol=1e-5)
    np.testing.assert_allclose(whole[0] @ W.T + b, out["logits"][0], atol=1e-3)

    p = dict(PARAMS, scoring="convmap", max_candidates=0, detections=5)
    rep = stage.build_regions(corpus / "images.tsv", onnx_path, tmp_path / "r.h5", tmp_path / "s.json", p,
                              score_onnx=onnx_path)
    assert rep["scoring"] == "convmap" and rep["mean_crops_encoded"] <= 1 + p["detections"]
    assert rep["mean_candidates_scored"] > rep["mean_crops_encoded"]
    r = store.read_regions(tmp_path / "r.h5")
    assert (r["n_proposals"] >= 1).all()
    i = list(r["image_ids"]).index("img2")
    n = r["n_proposals"][i]
    crops = regions.region_crops(img, r["boxes"][i, 1:n + 1].astype(int), 224, p["context_pad"])
    ref = runner.run(enc.preprocess(crops), ("features", "logits"))
    np.testing.assert_allclose(r["features"][i, :n + 1], ref["features"], atol=1e-4)  # the kept boxes' own crops
    np.testing.assert_allclose(r["scores"][i, :n + 1], enc.softmax(ref["logits"].astype(np.float64)).max(1), atol=1e-5)


# --- proposal quality -------------------------------------------------------------------------

def test_plausibility_map():
    P = quality.plausibility_matrix(["dog", "cat", "car", "tree"])
    names = enc.class_names("synonyms")
    golden = next(i for i, n in enumerate(names) if n.startswith("golden retriever"))
    tabby = next(i for i, n in enumerate(names) if n.startswith("tabby"))
    assert P[0, golden] and not P[1, golden] and P[1, tabby] and not P[0, tabby]
    assert P[0].sum() == 118 and not P[3].any()
    assert P[2, next(i for i, n in enumerate(names) if n.startswith("sports car"))]


def test_proposal_quality_counts(tmp_path, corpus):
    """Hand-made store: 2 images, 3 GT objects; exactly 2 covered, one with a plausible label."""
    h5 = tmp_path / "regions.h5"
    w = store.RegionWriter(h5, {"config": "{}"}, 20, 4, 5, chunk=8)
    names = enc.class_names("synonyms")
    golden = next(i for i, n in enumerate(names) if n.startswith("golden retriever"))

    def res(boxes, top1, n):
        b = np.tile(np.array([[0, 0, 100, 100]], np.float32), (20, 1))
        b[1:1 + len(boxes)] = boxes
        tc = np.zeros((20, 5), np.int16)
        tc[1:1 + len(top1), 0] = top1
        return dict(boxes=b, features=np.zeros((20, 4), np.float32), scores=np.zeros(20, np.float32),
                    top_classes=tc, top_probs=np.zeros((20, 5), np.float32), n_proposals=n,
                    n_raw_boxes=len(boxes), n_candidates=len(boxes))

    w.add("a", res([[10, 10, 50, 50], [60, 60, 90, 90]], [golden, 0], 2))
    w.add("b", res([[0, 0, 30, 30], [0, 0, 60, 60]], [golden, golden], 1))  # 2nd row is padding
    w.publish()
    gt = pd.DataFrame([dict(image_id="a", object=0, category="dog", x0=12, y0=10, x1=50, y1=52),
                       dict(image_id="a", object=1, category="cat", x0=60, y0=60, x1=88, y1=90),
                       dict(image_id="b", object=0, category="dog", x0=0, y0=0, x1=60, y1=60)])
    gt.to_csv(tmp_path / "boxes.tsv", sep="\t", index=False)
    q = quality.proposal_quality(h5, tmp_path / "boxes.tsv")
    assert q["objects"] == 3 and q["coverage_kept_detections"] == pytest.approx(2 / 3, abs=1e-4)
    assert q["coverage_incl_full_frame"] == pytest.approx(2 / 3, abs=1e-4)  # frame 100x100 vs 60x60: 0.36
    assert q["plausible_objects_evaluated"] == 2 and q["top1_plausible"] == 0.5
