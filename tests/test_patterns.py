"""Pattern discovery (2017 paper sec. 4-5): proposals, RoI pooling, VAD, grounding selection,
clustering, labels and purity/coverage on hand-made data, and the grounding stage end to end on a
hand-built corpus with a toy TorchScript towers file (the caption stage's export contract)."""
import itertools
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vgs.patterns import cluster as cl
from vgs.patterns import labels as lb
from vgs.patterns import metrics as mt
from vgs.patterns import proposals as prop
from vgs.patterns import vad as vd
from vgs.patterns.grounding import ground_split, select


# --- proposals -------------------------------------------------------------------------------------
def test_grid_boxes_match_a_hand_count():
    # 4x4 grid, sides >= 50% (2 cells), aspect 2:3..3:2: (w, h) in {2,3,4}^2 without (2,4), (4,2);
    # positions (5-w)(5-h): (2,2) 9 + (3,3) 4 + (4,4) 1 + (2,3),(3,2) 12 + (3,4),(4,3) 4 = 30
    assert len(prop.grid_boxes(4, 0.5)) == 30
    # the paper's grid, counted by brute force over all grid-line boxes
    n = sum(1 for x0, x1, y0, y1 in itertools.product(range(11), repeat=4)
            if x1 - x0 >= 3 and y1 - y0 >= 3 and 2 / 3 - 1e-9 <= (x1 - x0) / (y1 - y0) <= 1.5 + 1e-9)
    b = prop.grid_boxes(10, 0.3)
    assert len(b) == n == 738
    assert (b[:, 2] - b[:, 0] >= 0.3 - 1e-9).all() and (b[:, 3] - b[:, 1] >= 0.3 - 1e-9).all()
    assert len(np.unique(b, axis=0)) == len(b)


def test_grid_box_aspect_is_in_pixels():
    # on a 2:1 image a box of 3x6 cells is 0.3*W x 0.6*H = 0.6 H x 0.6 H: square, kept; 6x3 is 4:1, dropped
    b = prop.grid_boxes(10, 0.3, image_aspect=2.0)
    wide = (b[:, 2] - b[:, 0]) * 2.0 / (b[:, 3] - b[:, 1])
    assert ((wide >= 2 / 3 - 1e-9) & (wide <= 1.5 + 1e-9)).all()
    assert any(np.allclose(x, [0, 0, 0.3, 0.6]) for x in b) and not any(np.allclose(x, [0, 0, 0.6, 0.3]) for x in b)


def test_image_smaller_than_grid_is_an_error_naming_it():
    with pytest.raises(ValueError, match="img7.*8x20 px is smaller than the 10x10"):
        prop.check_image_size("img7", 8, 20, 10)


def test_roi_weights_are_exact_area_averages():
    cells = np.arange(16, dtype=np.float32).reshape(16, 1)  # a 4x4 map, value = 4 r + c
    W = prop.roi_weights(np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0.125, 0, 0.375, 0.25]]), 4, 4)
    np.testing.assert_allclose(W.sum(1), 1, rtol=1e-6)
    pooled = (W @ cells)[:, 0]
    # whole map: mean 7.5; top-left 2x2 cells: (0+1+4+5)/4 = 2.5; half of cell 0 and half of cell 1 of row 0: 0.5
    np.testing.assert_allclose(pooled, [7.5, 2.5, 0.5], rtol=1e-6)


def test_segments_and_span_means():
    s = prop.segments(120, 10, 50, 100)
    # starts 0..70; a start at t allows lengths 50..min(100, 120 - t): 6+6+6 (t=0,10,20) +5+4+3+2+1 = 33
    assert len(s) == 33 and s[:, 0].max() == 70 and (s[:, 1] <= 120).all()
    assert set(np.diff(s, axis=1).ravel()) == {50, 60, 70, 80, 90, 100}
    assert prop.segments(49, 10, 50, 100).shape == (0, 2) and len(prop.segments(50, 10, 50, 100)) == 1
    f = np.arange(8, dtype=np.float32)[:, None]
    np.testing.assert_allclose(prop.span_means(f, [[0, 8], [2, 4], [2.5, 3.5], [7, 9]])[:, 0], [3.5, 2.5, 2.5, 7])


# --- grounding selection -----------------------------------------------------------------------
SPANS = np.array([[[0, 50], [10, 60], [60, 110], [100, 150], [200, 260]]])


def test_interval_iou_suppression_on_hand_made_segments():
    # [10,60] overlaps the accepted [0,50] at IoU 40/60; [100,150] overlaps [60,110] at 10/90 = 0.11 > 0.1
    assert prop.interval_iou(np.array([100, 150]), np.array([60, 110])) == pytest.approx(1 / 9)
    assert select(np.array([[5.0, 4, 3, 2.9, 1]]), SPANS)[0, :3].tolist() == [0, 2, -1]
    # stops below 50% of the top score: 2.6 >= 2.5 is kept, 2.4 is not
    assert select(np.array([[5.0, 4, 3, -np.inf, 2.6]]), SPANS)[0, :4].tolist() == [0, 2, 4, -1]
    assert select(np.array([[5.0, 4, 3, -np.inf, 2.4]]), SPANS)[0, :3].tolist() == [0, 2, -1]
    # looser IoU: [100,150] survives; max_keep caps the list
    assert select(np.array([[5.0, 4, 3, 2.9, 1]]), SPANS, iou=0.2)[0, :4].tolist() == [0, 2, 3, -1]
    assert select(np.array([[5.0, 4, 3, 2.9, 2.8]]), SPANS, iou=0.2, max_keep=2)[0].tolist() == [0, 2]
    # a non-positive top score keeps only the top pair; no candidate at all keeps none
    assert select(np.array([[-1.0, -2, -3, -4, -5]]), SPANS)[0, :2].tolist() == [0, -1]
    assert (select(np.full((1, 5), -np.inf), SPANS) == -1).all()


def paper_walk(S, spans, iou=0.1, max_keep=10, ratio=0.5):
    """The paper's procedure literally: all (box, segment) pairs sorted by score, walked in order."""
    order = sorted(((-S[b, s], b, s) for b in range(S.shape[0]) for s in range(S.shape[1])))
    kept = []
    for neg, b, s in order:
        if kept and -neg < ratio * S[kept[0]]:
            break
        if all(prop.interval_iou(spans[s], spans[t]) <= iou for _, t in kept):
            kept.append((b, s))
            if len(kept) == max_keep:
                break
    return kept


def test_selection_equals_the_papers_walk_over_all_pairs():
    rng = np.random.default_rng(0)
    spans = prop.segments(300, 10, 50, 100)
    for trial in range(5):
        S = rng.normal(1, 0.3, (7, len(spans)))
        walk = paper_walk(S, spans)
        picked = select(S.max(0)[None], spans[None])[0]
        picked = picked[picked >= 0]
        assert [s for _, s in walk] == picked.tolist()
        assert [b for b, _ in walk] == S[:, picked].argmax(0).tolist()


# --- clustering and metrics ----------------------------------------------------------------------
def test_kmeans_variance_affinity_random_baseline():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.01, (20, 3)), rng.normal(5, 0.01, (30, 3))]).astype(np.float32)
    a, c = cl.kmeans(X, 2, seed=0)
    b, _ = cl.kmeans(X, 2, seed=0)
    assert (a == b).all() and sorted(np.bincount(a)) == [20, 30]  # deterministic, finds the two blobs
    var = cl.variance(X, a, c)
    assert (var < 1e-3).all()
    r = cl.random_like(a, 1)
    assert sorted(np.bincount(r)) == [20, 30] and not (r == a).all()
    assert cl.variance(X, r, cl.centroids(X, r, 2)).min() > 1  # random clusters mix the blobs
    img, aud = np.array([[1.0, 0], [0, 1], [1, 1]]), np.array([[2.0, 0], [0, 3], [1, 0]])
    aff = cl.affinity(img, aud, np.array([0, 1, 1]), np.array([1, 0, 1]), 2, 2)
    # pairs: (img0, aud1) dot 2; (img1, aud0) dot 3; (img1, aud1) dot 1
    np.testing.assert_allclose(aff, [[0, 2], [3, 1]])


def test_purity_and_coverage_on_a_hand_made_clustering():
    labels = np.array(["dog", "dog", "the dog", "cat", "", "", "a cat", None], dtype=object)
    first = np.array([1, 4, 0, 2, -1, -1, 0, -1])
    utt = np.array(["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"], dtype=object)
    cluster = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    occ = {"dog": 5, "cat": 4, "the dog": 1}
    t = mt.audio_clusters(cluster, labels, first, utt, 2, occ)
    assert t["label"].tolist() == ["dog", ""]
    # cluster 0: "dog", "dog", "the dog" contain "dog" (whole words), "cat" does not: 3/4
    # cluster 1: silence label; the unlabelled member (None: its caption is unaligned) is not counted: 2/3
    np.testing.assert_allclose(t["purity"], [0.75, 2 / 3])
    # coverage: 3 distinct occurrences of "dog" captured of 5; silence has none
    assert t["coverage"][0] == pytest.approx(0.6) and np.isnan(t["coverage"][1])
    s = mt.summary(t)
    assert s == {"clusters": 2, "points": 8, "purity": pytest.approx(5 / 7), "unique_labels": 1, "avg_coverage": 0.6}
    assert mt.contains(["the dogs", "hotdog", "a dog"], ["dog", "dog", "dog"]).tolist() == [False, False, True]


def test_segment_and_box_labels():
    words = pd.DataFrame({"utt_id": ["u", "u", "u"], "index": [0, 1, 2], "word": ["a", "red", "dog"],
                          "start": [0.0, 0.1, 0.5], "end": [0.1, 0.5, 1.0]})
    # [0.20, 0.70): "red" overlapped 0.3/0.4 = 75%, "dog" 0.2/0.5 = 40%, "a" 0%; [0.85, 1.35): "dog" 30%; [0, 0.02): "a" 20%
    lab, first, aligned = lb.segment_labels(["u", "u", "u", "x"], np.array([[20, 70], [85, 135], [0, 2], [0, 50]]), words)
    assert lab.tolist() == ["red dog", "dog", "", None] and first.tolist() == [1, 2, -1, -1]
    assert aligned.tolist() == [True, True, True, False]
    assert lb.ngram_counts(words, ["u"], 2) == {"a": 1, "red": 1, "dog": 1, "a red": 1, "red dog": 1}
    gt = pd.DataFrame({"image_id": ["i", "i"], "category": ["cat", "cup"], "x0": [0, 50], "y0": [0, 50],
                       "x1": [50, 100], "y1": [50, 100]})
    boxes = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.6, 0.6], [0, 0, 1, 1]])
    assert lb.box_labels(["i"] * 3, boxes, np.full(3, 100), np.full(3, 100), gt).tolist() == ["cat", "cat", ""]


# --- VAD -----------------------------------------------------------------------------------------
def test_energy_vad_word_frames_agreement_and_silence_fraction():
    t = np.arange(16000) / 16000
    wav = np.where((t >= 0.3) & (t < 0.7), 0.5 * np.sin(2 * np.pi * 220 * t), 1e-5).astype(np.float32)
    speech = vd.energy_frames(wav, 100)
    assert speech[35:65].all() and not speech[:25].any() and not speech[75:].any()
    off = np.array([0, 100])
    in_word = vd.word_frames(off, np.array([0]), [0.3], [0.7])
    assert in_word.sum() == 40 and in_word[30] and not in_word[29] and not in_word[70]
    ag = vd.agreement(speech, in_word)
    assert ag["accuracy"] > 0.95 and ag["kappa"] > 0.9
    # frames 20..70 hold 40 speech frames of 50 -> 20% silence; 0..50 -> 20 of 50 speech -> 60% silence
    frac = vd.silence_fraction(in_word, 0, np.array([[20, 70], [0, 50]]))
    np.testing.assert_allclose(frac, [0.2, 0.6])


def test_silero_vad_loads_offline_and_finds_speech(tiny_flickr):
    model = vd.load_silero()
    assert model is not None, "silero-vad should load from its wheel"
    from vgs.speech.audio import load_audio

    wav, _ = load_audio(next((tiny_flickr / "flickr_audio" / "wavs").glob("*.wav")), 16000)
    padded = np.concatenate([np.zeros(16000, np.float32), wav, np.zeros(16000, np.float32)])
    n = len(padded) // 160
    p = vd.silero_frames(model, padded, n)
    assert p[:80].max() < 0.5 and p[-80:].max() < 0.5  # the added second of digital silence
    assert (p[100:n - 100] >= 0.5).mean() > 0.6  # most of the spoken caption


# --- towers contract and the grounding stage on a hand-built corpus --------------------------------
class ToyTowers(nn.Module):
    """The caption stage's towers.pt contract (vgs/caption/__init__.py) with a pointwise audio "net"
    (optionally max-pooled by 2) and a linear (or ReLU, not affine) fc image tower."""

    def __init__(self, feat_dim, image_dim, dim, stride=1, relu_image=False, similarity="dot"):
        super().__init__()
        torch.manual_seed(0)
        self.audio = nn.Linear(feat_dim, dim, bias=False)
        self.proj = nn.Linear(image_dim, dim, bias=False)
        self.relu_image = relu_image
        self.similarity: str = similarity
        self.normalize: str = "audio"
        self.embed_dim: int = dim
        self.feat_dim: int = feat_dim
        self.frame_stride: int = stride
        self.image_kind: str = "fc"

    @torch.jit.export
    def embed_audio(self, x, lengths):
        y = self.audio(x)
        if self.frame_stride == 2:
            y = F.max_pool1d(y.transpose(1, 2), 2, 2, ceil_mode=True).transpose(1, 2)
            lengths = (lengths + 1) // 2
        mask = torch.arange(y.shape[1])[None, :] < lengths[:, None]
        return y * mask[..., None].to(y.dtype), lengths

    @torch.jit.export
    def pool_audio(self, frames, lengths):
        mask = (torch.arange(frames.shape[1])[None, :] < lengths[:, None]).to(frames.dtype)
        return F.normalize((frames * mask[..., None]).sum(1) / lengths.clamp_min(1)[:, None].to(frames.dtype), dim=-1)

    @torch.jit.export
    def embed_images(self, v):
        y = self.proj(v)
        return (F.relu(y) if self.relu_image else y)[:, None, :]

    @torch.jit.export
    def pool_image(self, cells):
        return cells.mean(1)

    def forward(self, x, lengths):
        frames, lengths = self.embed_audio(x, lengths)
        return self.pool_audio(frames, lengths)


def save_towers(path, module):
    with warnings.catch_warnings():  # torch 2.13 calls TorchScript deprecated; the caption stage exports it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path


def test_towers_fast_paths_equal_the_slow_ones(tmp_path):
    from vgs.patterns.towers import Towers

    rng = np.random.default_rng(0)
    t = Towers(save_towers(tmp_path / "t.pt", ToyTowers(5, 6, 4)), torch.device("cpu"))
    cells = rng.normal(size=(2, 16, 6)).astype(np.float32)
    W = prop.roi_weights(prop.grid_boxes(4, 0.5), 4, 4)
    fast = t.box_embeddings_roi(cells, W)
    assert t._affine is True
    t._affine = False  # pool the features first, then the tower
    np.testing.assert_allclose(t.box_embeddings_roi(cells, W), fast, atol=1e-5)
    relu = Towers(save_towers(tmp_path / "r.pt", ToyTowers(5, 6, 4, relu_image=True)), torch.device("cpu"))
    assert relu.image_is_affine(cells[0]) is False
    # a pointwise net: its frame outputs do not depend on context, so pooling them equals running it per segment
    feats = [rng.normal(size=(n, 5)).astype(np.float32) for n in (120, 75)]
    spans = [prop.segments(len(f), 10, 50, 100) for f in feats]
    pooled = t.segment_embeddings_pool(t.caption_frames(feats), spans)
    exact = t.segment_embeddings_exact(feats, spans)
    for a, b in zip(pooled, exact):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert [len(a) for a in pooled] == [33, 6]


def test_towers_of_a_matchmap_system_are_refused_by_name(tmp_path):
    from vgs.patterns.towers import Towers

    with pytest.raises(ValueError, match=r"m.pt: grounding needs .* dot product, not 'fc' / 'misa'"):
        Towers(save_towers(tmp_path / "m.pt", ToyTowers(5, 6, 4, similarity="misa")), torch.device("cpu"))


GRID = {"grid": 4, "min_side": 0.5, "min_aspect": 2 / 3, "max_aspect": 1.5}


def hand_corpus(root, size=100):
    """Two images whose 4x4 conv map (3 channels) holds an 'object' (channel 0) in its top-left 2x2
    cells, else background (channel 2); five captions: one saying the object in frames 40..90
    (feature dim 0), one too short, one all silence, one without features, and one more."""
    root.mkdir(exist_ok=True)
    m = np.zeros((2, 3, 4, 4), np.float16)
    m[:, 2] = 1
    m[:, 0, :2, :2], m[:, 2, :2, :2] = 2, 0  # the object scores 2 with its word, background 1 with its own
    with h5py.File(root / "convmap.h5", "w") as f:
        f["image_ids"] = np.array(["imgA", "imgB"], dtype=object).astype("S")
        f["convmap"] = m
    feats = {"uA": np.tile([0.0, 0, 1], (120, 1)), "uB": np.tile([0.0, 0, 1], (150, 1)),
             "uShort": np.ones((30, 3)), "uSilent": np.ones((80, 3))}
    feats["uA"][40:90] = [1, 0, 0]
    feats["uB"][60:110] = [1, 0, 0]
    with h5py.File(root / "fbank.h5", "w") as f:
        for k, v in feats.items():
            f[f"feats/{k}"] = v.astype(np.float32)
    speech = {k: np.ones(len(v), bool) for k, v in feats.items()}
    speech["uSilent"][:] = False
    with h5py.File(root / "vad.h5", "w") as f:
        f["utt_ids"] = np.array(list(speech), dtype=object).astype("S")
        f["offsets"] = np.concatenate([[0], np.cumsum([len(v) for v in speech.values()])])
        f["speech"] = np.concatenate(list(speech.values()))
    pd.DataFrame({"utt_id": ["uA", "uShort", "uSilent", "uNoFeat", "uB"],
                  "image_id": ["imgA", "imgA", "imgA", "imgB", "imgB"], "split": "train"}).to_csv(
        root / "utterances.tsv", sep="\t", index=False)
    pd.DataFrame({"image_id": ["imgA", "imgB"], "path": ["a.jpg", "b.jpg"], "width": size, "height": size}).to_csv(
        root / "images.tsv", sep="\t", index=False)
    return root


class IdentityTowers(ToyTowers):
    def __init__(self):
        super().__init__(3, 3, 3)
        with torch.no_grad():
            self.audio.weight.copy_(torch.eye(3))
            self.proj.weight.copy_(torch.eye(3))


PARAMS = {"split": "train", "boxes": {**GRID, "embed": "roi"},
          "segments": {"step": 10, "min_frames": 50, "max_frames": 100, "embed": "pool"},
          "vad": {"max_silence": 0.4}, "grounding": {"iou": 0.1, "max_keep": 10, "score_ratio": 0.5}}


def _ground(root, towers, params=PARAMS):
    return ground_split(towers, root / "convmap.h5", root / "fbank.h5", root / "vad.h5", root / "utterances.tsv",
                        root / "images.tsv", params)


def test_grounding_finds_the_object_and_the_word_and_counts_bad_captions(tmp_path):
    root = hand_corpus(tmp_path / "c")
    towers = save_towers(tmp_path / "t.pt", IdentityTowers())
    arrays, items, report = _ground(root, towers)
    status = dict(zip(items["utt_id"], items["status"]))
    assert status == {"uA": "grounded", "uShort": "too_short", "uSilent": "all_silent", "uNoFeat": "no_features",
                      "uB": "grounded"}
    assert report["status_counts"] == {"grounded": 2, "no_features": 1, "no_vad": 0, "no_image_features": 0,
                                       "too_short": 1, "all_silent": 1}
    top = {items.at[int(i), "utt_id"]: (b, s) for i, b, s, r in
           zip(arrays["item"], arrays["box"], arrays["span"], arrays["rank"]) if r == 0}
    # the top grounding: the box exactly on the object's cells and the segment exactly on the "word"
    np.testing.assert_allclose(top["uA"][0], [0, 0, 0.5, 0.5])
    assert top["uA"][1].tolist() == [40, 90] and top["uB"][1].tolist() == [60, 110]
    assert report["box_proposals_per_item"] == 30 and report["pairs_scored"] == 30 * (33 + 51)  # 4x4-grid boxes x segments of 120 and 150 frames
    # accepted segments of one caption overlap by IoU <= 0.1; scores fall in order, >= 50% of the top
    for i in np.unique(arrays["item"]):
        sel = arrays["item"] == i
        sp, sc = arrays["span"][sel], arrays["score"][sel]
        assert (np.diff(sc) <= 1e-7).all() and (sc >= 0.5 * sc[0] - 1e-7).all()
        assert all(prop.interval_iou(a, b) <= 0.1 for a, b in itertools.combinations(sp, 2))
    # determinism: the same inputs give identical groundings
    again, _, _ = _ground(root, towers)
    for k in arrays:
        np.testing.assert_array_equal(again[k], arrays[k])


def test_image_smaller_than_the_grid_stops_grounding(tmp_path):
    root = hand_corpus(tmp_path / "c", size=3)
    with pytest.raises(ValueError, match=r"imgA \(a.jpg\): 3x3 px is smaller than the 4x4 box grid"):
        _ground(root, save_towers(tmp_path / "t.pt", IdentityTowers()))
