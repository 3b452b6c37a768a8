"""Fragment alignment model: scoring, cost, metrics, training hygiene, evaluation files."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from vgs import retrieval
from vgs.fragment.data import load_split
from vgs.fragment.evaluate import evaluate_system
from vgs.recall.table import write as write_recall
from vgs.fragment.grounding import grounding_accuracy, iou
from vgs.fragment.model import FragmentModel, chunked_scores, margin_cost, score_matrix
from vgs.fragment.textvec import fit_word_vectors, write_text_word_vectors
from vgs.fragment.toy import make_toy, write_toy_files
from vgs.fragment.train import evaluate_split, load_model, run_training, save_model, train_model

torch.set_num_threads(1)
CFG = dict(embed_dim=32, lr=1e-4, momentum=0.9, weight_decay=0.0, batch_images=10, epochs=6, margin=1.0,
           standardize_images=True, seed=0)


def split(d, a, b):
    """Images [a, b) of a toy SplitData with their captions and words."""
    m = (d.cap_image >= a) & (d.cap_image < b)
    w = m[d.seg]
    remap = -np.ones(len(m), int)
    remap[m] = np.arange(m.sum())
    return replace(d, image_ids=d.image_ids[a:b], feats=d.feats[a:b], boxes=d.boxes[a:b], cap_ids=d.cap_ids[m],
                   cap_image=d.cap_image[m] - a, words=d.words[w], seg=remap[d.seg[w]], word_text=d.word_text[w])


@pytest.fixture(scope="module")
def toy():
    d, gt = make_toy(n_images=100, n_classes=12, seed=3)
    return split(d, 0, 70), split(d, 70, 85), split(d, 85, 100), gt


def test_score_matrix_equals_naive_loop():
    g = torch.Generator().manual_seed(0)
    K, R, h, C = 4, 5, 6, 7
    y = torch.randn(K, R, h, generator=g)
    lens = [3, 1, 0, 4, 2, 5, 1]  # one empty caption
    seg = torch.repeat_interleave(torch.arange(C), torch.tensor(lens))
    x = torch.randn(len(seg), h, generator=g)
    mask = torch.rand(K, R, generator=g) > 0.3
    S = score_matrix(y, x, seg, C, mask)
    ref = torch.zeros(K, C)
    for k in range(K):
        for t in range(len(seg)):
            ref[k, seg[t]] += max([0.0] + [float(y[k, i] @ x[t]) for i in range(R) if mask[k, i]])
    assert torch.allclose(S, ref, atol=1e-5)
    assert S[:, 2].abs().sum() == 0  # empty caption scores 0


def test_margin_cost_equals_formula():
    S = torch.tensor([[3.0, 2.5, 0.0], [1.0, 0.5, 4.0], [2.0, 0.0, 1.2]])
    ref = 0.0
    for k in range(3):
        for l in range(3):
            ref += max(0, S[k, l] - S[k, k] + 1) + max(0, S[l, k] - S[k, k] + 1)
    assert margin_cost(S).item() == pytest.approx(float(ref))
    # identity-like scores: only the l == k terms (1 each, both directions) remain
    assert margin_cost(torch.eye(3) * 5).item() == pytest.approx(6.0)


def test_ranks_and_recall_on_hand_made_scores():
    # 3 images; captions 0,1 -> image 0, caption 2 -> image 1, captions 3,4 -> image 2
    cap_image = np.array([0, 0, 1, 2, 2])
    S = np.array([[9, 1, 5, 0, 0],
                  [8, 7, 6, 0, 0],
                  [7, 9, 1, 2, 1.0]])
    search, annot = retrieval.ranks(S, cap_image)
    # caption 0: image 0 best (9) -> 1; caption 1: 7,9 above 1 -> 3; caption 2: image1 6 vs 5,1 -> 1;
    # caption 3: image2 2 vs 0,0 -> 1; caption 4: 1 vs 0,0 -> 1
    assert search.tolist() == [1, 3, 1, 1, 1]
    # image 0: best own 9 -> 1; image 1: own 6, others 8,7 above -> 3; image 2: own best 2, 7,9 above -> 3
    assert annot.tolist() == [1, 3, 3]
    t = retrieval.recall_table(search, annot, ks=(1, 2))
    assert t["search"]["R@1"] == pytest.approx(80.0) and t["search"]["median_rank"] == 1
    assert t["annotation"]["R@1"] == pytest.approx(100 / 3) and t["annotation"]["R@2"] == pytest.approx(100 / 3)
    # ties count against the system: all-equal scores rank last
    s2, a2 = retrieval.ranks(np.zeros((3, 5)), cap_image)
    assert s2.tolist() == [3] * 5 and a2.tolist() == [4, 5, 4]


def test_random_baseline_analytic_matches_simulation():
    cap_image = np.repeat(np.arange(50), 5)
    a = retrieval.random_analytic(50, np.full(50, 5), ks=(1, 10))
    assert a["search"]["R@10"] == pytest.approx(20.0)
    assert a["annotation"]["R@1"] == pytest.approx(100 * 5 / 250)
    exact10 = 100 * (1 - np.prod([(245 - j) / (250 - j) for j in range(10)]))
    assert a["annotation"]["R@10"] == pytest.approx(exact10)
    s = retrieval.random_simulated(cap_image, ks=(1, 10), trials=40, seed=1)
    assert abs(s["search"]["R@10"] - a["search"]["R@10"]) < 2.5
    assert abs(s["annotation"]["R@10"] - a["annotation"]["R@10"]) < 5


def test_chunked_scores_equal_one_block():
    d, _ = make_toy(n_images=12, seed=1)
    torch.manual_seed(0)
    m = FragmentModel(d.feats.shape[2], d.words.shape[1], 16)
    m.set_image_stats(d.feats)
    full = chunked_scores(m, d.feats, d.words, d.seg, len(d.cap_ids), mem_mb=1000)
    tiny = chunked_scores(m, d.feats, d.words, d.seg, len(d.cap_ids), mem_mb=0.001)  # one image per chunk
    with torch.no_grad():
        ref = score_matrix(m.embed_images(torch.as_tensor(d.feats)), m.embed_words(torch.as_tensor(d.words)),
                           torch.as_tensor(d.seg), len(d.cap_ids)).numpy()
    np.testing.assert_allclose(full, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tiny, ref, rtol=1e-5, atol=1e-5)


def test_training_learns_toy_far_above_chance(toy, tmp_path):
    tr, dv, te, gt = toy
    model, info = train_model(tr, dv, CFG, tmp_path / "ck.pt")
    tab, _ = evaluate_split(model, te)
    # chance: search R@10 = 10/15 images is high, so use R@1 (chance 6.7%) and median rank
    assert tab["search"]["R@1"] > 40, tab
    assert tab["annotation"]["R@1"] > 40, tab
    assert info["history"][-1]["loss_per_image"] < 0.5 * info["history"][0]["loss_per_image"]
    g = grounding_accuracy(model, te, gt, 0.5)
    assert g["words"] > 20 and g["accuracy"] > g["random_baseline"] + 30, g


def test_same_config_same_result_and_resume_after_kill(toy, tmp_path):
    tr, dv, te, _ = toy
    m1, i1 = train_model(tr, dv, CFG, tmp_path / "a.pt")
    m2, i2 = train_model(tr, dv, CFG, tmp_path / "b.pt")
    with pytest.raises(KeyboardInterrupt):
        train_model(tr, dv, CFG, tmp_path / "c.pt", stop_after_epoch=2)
    assert json.dumps(torch.load(tmp_path / "c.pt", weights_only=False)["state"]["epoch"]) == "2"
    m3, i3 = train_model(tr, dv, CFG, tmp_path / "c.pt")  # resumes at epoch 3
    assert [h["epoch"] for h in i3["history"]] == list(range(1, CFG["epochs"] + 1))
    for m in (m2, m3):
        for (k, a), b in zip(m1.state_dict().items(), m.state_dict().values()):
            assert torch.equal(a, b), k
    assert i1["best_epoch"] == i2["best_epoch"] == i3["best_epoch"]
    assert [h["dev_mean_recall"] for h in i1["history"]] == [h["dev_mean_recall"] for h in i3["history"]]
    # a checkpoint from another config is ignored, not resumed
    _, i4 = train_model(tr, dv, dict(CFG, seed=1, epochs=1), tmp_path / "c.pt")
    assert [h["epoch"] for h in i4["history"]] == [1]


def test_text_word_vectors_group_words_by_context():
    caps = ["a dog on a mat", "a cat on a mat", "the dog runs", "the cat runs", "a bird flies", "the bird flies"] * 5
    vocab, vec = fit_word_vectors(caps, dim=200, window=2)
    assert vec.shape == (len(vocab), len(vocab) - 1)  # capped at vocabulary size - 1
    v = {w: x / np.linalg.norm(x) for w, x in zip(vocab, vec)}
    assert v["dog"] @ v["cat"] > 0.9 > v["dog"] @ v["flies"] + 0.3


def test_files_end_to_end(tmp_path):
    """Pipeline-format inputs -> train -> evaluate -> merged table, for the speech and text rows."""
    write_toy_files(tmp_path, splits=(("train", 50), ("dev", 10), ("test", 12)), seed=5)
    tv = write_text_word_vectors(tmp_path / "utterances.tsv", tmp_path / "utterances.tsv", tmp_path / "text.h5",
                                 dict(dim=200, window=0, min_count=1, seed=0))
    assert tv["oov"] == 0 and tv["dim"] == tv["vocab"] - 1
    test = load_split(tmp_path / "regions.h5", tmp_path / "word_vectors.h5", tmp_path / "utterances.tsv", "test")
    assert test.sizes()["images"] == 12 and test.sizes()["captions"] == 60 and test.sizes()["empty_captions"] == 0
    ev = dict(ks=[1, 5, 10], eval_mem_mb=64, random_trials=3, grounding_iou=0.5, seed=0)
    rows, out_speech = [], None
    for name, words, seeds in (("speech", "word_vectors.h5", (0, 1)), ("text", "text.h5", (0,))):
        models = []
        for seed in seeds:  # one training run per seed, as rule fragment_train does
            info = run_training(tmp_path / "regions.h5", tmp_path / words, tmp_path / "utterances.tsv",
                                dict(CFG, seed=seed), tmp_path / f"{name}{seed}.ck", tmp_path / f"{name}{seed}.pt",
                                tmp_path / f"{name}{seed}.json")
            assert 1 <= info["best_epoch"] <= CFG["epochs"]
            models.append(tmp_path / f"{name}{seed}.pt")
        out = evaluate_system(models, tmp_path / "regions.h5", tmp_path / words,
                              tmp_path / "utterances.tsv", ev, tmp_path / f"{name}.npz", tmp_path / f"{name}_m.json",
                              tmp_path / "boxes.tsv", name)
        scores = np.load(tmp_path / f"{name}.npz")
        assert sorted(scores) == [f"seed{s}" for s in seeds] and scores["seed0"].shape == (12, 60)
        assert [r["seed"] for r in out["runs"]] == list(seeds)
        assert all(r["test"]["search"]["R@1"] > 30 for r in out["runs"])
        out_speech = out if name == "speech" else out_speech
        rows.append(tmp_path / f"{name}_m.json")
    res = write_recall(rows, {"ks": [1, 5, 10], "bootstrap": 200, "seed": 0}, tmp_path / "r.json",
                       tmp_path / "r.md", tmp_path / "r.html")
    labels = [r["label"] for r in res["rows"]]
    assert labels == ["Spectrogram CNN (2015)", "Text + word vec (2015)", "Random ranking"]
    # the table recomputes the stage's own numbers: mean and sd over the two seeds
    r0, r1 = (r["test"]["search"]["R@1"] for r in out_speech["runs"])
    assert res["rows"][0]["n_runs"] == 2 and res["rows"][0]["run_tables"] == [r["test"] for r in out_speech["runs"]]
    assert res["rows"][0]["test"]["search"]["R@1"] == pytest.approx((r0 + r1) / 2)
    assert res["rows"][0]["test_sd"]["search"]["R@1"] == pytest.approx(abs(r0 - r1) / np.sqrt(2))
    assert res["rows"][2]["test"]["search"]["R@10"] == pytest.approx(100 * 10 / 12)
    md = (tmp_path / "r.md").read_text()
    assert "| Random ranking | 8.3 |" in md and "17.9" in md  # ours and the paper's numbers
    assert f"{(r0 + r1) / 2:.1f} ± {abs(r0 - r1) / np.sqrt(2):.1f}" in md
    model, _ = load_model(tmp_path / "speech0.pt")
    save_model(model, CFG, {"best_epoch": 0}, tmp_path / "again.pt")  # round trip
    assert torch.equal(load_model(tmp_path / "again.pt")[0].image_mean, model.image_mean)


def test_bad_inputs_are_named(tmp_path):
    write_toy_files(tmp_path, splits=(("train", 4), ("dev", 2), ("test", 2)))
    with pytest.raises(ValueError, match="utterances.tsv: no utterances in split 'eval'"):
        load_split(tmp_path / "regions.h5", tmp_path / "word_vectors.h5", tmp_path / "utterances.tsv", "eval")
    import h5py
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["vectors"] = np.zeros((1, 3))
    with pytest.raises(ValueError, match="bad.h5: missing dataset 'utt_ids'"):
        load_split(tmp_path / "regions.h5", tmp_path / "bad.h5", tmp_path / "utterances.tsv", "test")


def test_iou():
    a = np.array([0, 0, 10, 10.0])
    assert iou(a, np.array([5, 0, 15, 10.0])) == pytest.approx(50 / 150)
    assert iou(a, a) == pytest.approx(1.0) and iou(a, np.array([20, 20, 30, 30.0])) == 0


def test_object_names_include_plurals():
    from vgs.fragment.grounding import name_forms
    assert {"butterfly", "butterflies"} <= name_forms("butterfly")
    assert {"bus", "buses"} <= name_forms("bus") and "mice" in name_forms("mouse")
    assert "cats" not in name_forms("dog")


def test_padding_regions_are_masked(tmp_path):
    """regions.h5 rows beyond 1 + n_proposals copy row 0: excluded from statistics and baselines."""
    import h5py
    write_toy_files(tmp_path, splits=(("train", 4), ("dev", 2), ("test", 2)))
    with h5py.File(tmp_path / "regions.h5", "a") as f:
        f["n_proposals"] = np.array([19, 3, 0, 19, 19, 19, 5, 19], dtype=np.int16)
    d = load_split(tmp_path / "regions.h5", tmp_path / "word_vectors.h5", tmp_path / "utterances.tsv", "train")
    assert d.region_mask().sum(1).tolist() == [20, 4, 1, 20]
    m = FragmentModel(d.feats.shape[2], d.words.shape[1], 8)
    m.set_image_stats(d.feats, d.region_mask())
    real = d.feats[d.region_mask()]
    np.testing.assert_allclose(m.image_mean.numpy(), real.mean(0), rtol=1e-5)
    assert d.sizes()["real_regions"] == 45
