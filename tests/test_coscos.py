"""coscos stage (Synnaeve et al. 2014): loss, max-norm, pair sampling, the four rank definitions,
content-word tokens, training on a learnable toy, resume after a kill."""
import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from vgs.coscos.data import Split, load_split, select_tokens
from vgs.coscos.evaluate import write_tables
from vgs.coscos.model import CoscosNet, apply_max_norm, coscos2, cosines
from vgs.coscos.ranks import first_relevant_ranks, summary, task_ranks
from vgs.coscos.train import batch_pairs, draw_different, train_model

torch.set_num_threads(1)


def test_coscos2_value_and_gradient_on_hand_made_vectors():
    # a = (1, 0), b = (1, 1): cos = 1/√2; d cos/da = b/(|a||b|) - cos·a/|a|² = (0, 1/√2)
    c = 2 ** -0.5
    for same, value, grad in ((True, (1 - c) / 2, [0.0, -c / 2]),   # (1 - cos)/2 → -½ d cos
                              (False, 0.5, [0.0, 2 * c * c])):        # cos² → 2 cos · d cos
        a = torch.tensor([[1.0, 0.0]], requires_grad=True)
        b = torch.tensor([[1.0, 1.0]])
        loss = coscos2(cosines(a, b), torch.tensor([[same]])).sum()
        loss.backward()
        assert loss.item() == pytest.approx(value, abs=1e-6)
        assert a.grad[0].tolist() == pytest.approx(grad, abs=1e-6)
    # extremes: collinear same pair costs 0, orthogonal different pair costs 0, anti-collinear same 1
    C = cosines(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 0.0], [-1.0, 0.0]]))
    assert coscos2(C, torch.tensor([[True, True], [False, False]])).tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_max_norm_clips_each_units_incoming_weights():
    net = CoscosNet(3, 4, embed_dim=2, image_layers=[], speech_layers=[])
    with torch.no_grad():
        net.image[0].weight.copy_(torch.tensor([[6.0, 8.0, 0.0], [1.0, 2.0, 2.0]]))  # norms 10 and 3
    apply_max_norm(net, 6.0)
    w = net.image[0].weight
    assert w.norm(dim=1).tolist() == pytest.approx([6.0, 3.0])
    assert w[0].tolist() == pytest.approx([3.6, 4.8, 0.0])  # direction kept
    assert w[1].tolist() == pytest.approx([1.0, 2.0, 2.0])  # under the bound: untouched


def _unit(deg):
    r = np.deg2rad(np.asarray(deg, dtype=float))
    return torch.tensor(np.stack([np.cos(r), np.sin(r)], 1), dtype=torch.float32)


def test_four_rank_definitions_on_hand_made_embeddings():
    """Embeddings are unit vectors at given angles, so the nearest neighbour is the nearest angle.
    Tokens t0 0° (img0 dog), t1 90° (img0 ball), t2 10° (img1 dog), t3 60° (img1 cat); fragments
    f0 8° and f1 80° (img0), f2 85° (img1), f3 30° (img2, an image without tokens)."""
    tok_image, tok_word = np.array([0, 0, 1, 1]), np.array(["dog", "ball", "dog", "cat"], dtype=object)
    frag_image = np.array([0, 0, 1, 2])
    r = task_ranks(_unit([0, 90, 10, 60]) * 3, _unit([8, 80, 85, 30]), tok_image, tok_word, frag_image, 3)
    # t0: t2(10°) t3(60°) t1(90°) → t1 is 3rd; t1: t3 t2 t0 → 3; t2: t0 t3 → t3 2nd; t3: t1 t2 → 2
    assert r["word_similarity"].tolist() == [3, 3, 2, 2]
    # f0 8°: t2(2°) before t0(8°) → 2; f1 80°: t1 → 1; f2 85°: t1(5°) t3(25°) → 2; f3: no token → 0
    assert r["word_token_by_image"].tolist() == [2, 1, 2, 0]
    # by type: f0's image has "dog", so t2 (dog, img1) counts → 1; f2: t1 is "ball", t3 "cat" → 2
    assert r["word_type_by_image"].tolist() == [1, 1, 2, 0]
    # t0: f0 → 1; t1 90°: f2(5°) f1(10°) → 2; t2 10°: f0 f3 f1 f2 → 4; t3 60°: f1(20°) f2(25°) → 2
    assert r["image_token_by_word"].tolist() == [1, 2, 4, 2]
    s = summary(r["word_token_by_image"], ks=(1, 2))
    assert s == {"median_rank": 2.0, "mean_rank": pytest.approx(5 / 3), "queries": 3,
                 "R@1": pytest.approx(100 / 3), "R@2": 100.0}


def test_ties_count_against_the_system_and_self_is_not_ranked():
    Q = torch.tensor([[1.0, 0.0]])
    items = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # relevant item 1 ties with irrelevant item 0 → rank 2 (pessimistic)
    assert first_relevant_ranks(Q, items, lambda lo, hi: np.array([[False, True, False]])).tolist() == [2]
    # exclude_self: query 0 is item 0; its twin item 1 is relevant → rank 1
    assert first_relevant_ranks(items[:1], items, lambda lo, hi: np.array([[True, True, False]]),
                                exclude_self=True).tolist() == [1]
    # a query whose only relevant item is itself has no rank
    assert first_relevant_ranks(items[:1], items, lambda lo, hi: np.array([[True, False, False]]),
                                exclude_self=True).tolist() == [0]


def _split(rng, n_images, tok_per_image, frag_per_image, tok_dim=6, frag_dim=5):
    tok_image = np.repeat(np.arange(n_images), tok_per_image)
    frag_image = np.repeat(np.arange(n_images), frag_per_image)
    return Split(np.array([f"i{k}" for k in range(n_images)], dtype=object),
                 rng.normal(size=(len(tok_image), tok_dim)).astype(np.float32), tok_image,
                 np.array(["w"] * len(tok_image), dtype=object),
                 rng.normal(size=(len(frag_image), frag_dim)).astype(np.float32), frag_image)


def test_different_tokens_never_come_from_the_image_and_match_same_pair_count():
    rng = np.random.default_rng(0)
    d = _split(rng, 6, [1, 4, 2, 3, 2, 5], [2, 3, 1, 4, 2, 3])
    off = d.offsets("tok")
    imgs = np.array([1, 4, 5, 0])
    rows, owner = draw_different(off, imgs, np.random.default_rng(1))
    assert (np.bincount(owner, minlength=6)[imgs] == np.diff(off)[imgs]).all()
    draws = np.concatenate([draw_different(off, imgs, np.random.default_rng(s))[0] for s in range(200)])
    owners = np.tile(owner, 200)
    assert (d.tok_image[draws] != owners).all()
    assert set(draws.tolist()) == set(range(len(d.tok_image)))  # every other token can be drawn
    f, t, same, diff = batch_pairs(d, np.array([3]), np.random.default_rng(2))
    assert same.sum() == diff.sum() == 4 * 3  # 4 fragments × 3 tokens, as many different pairs
    assert not (same & diff).any() and (d.frag_image[f] == 3).all()


def _toy(n_images, seed):
    """Learnable toy: each image shows 2 of 8 categories; fragments and tokens are noisy category
    prototypes (different prototypes per modality), plus one background fragment."""
    rng = np.random.default_rng(100)
    P_img, P_tok = rng.normal(size=(8, 12)), rng.normal(size=(8, 16))
    rng = np.random.default_rng(seed)
    cats = np.array([rng.choice(8, 2, replace=False) for _ in range(n_images)])
    frags = np.concatenate([P_img[cats] + 0.3 * rng.normal(size=(n_images, 2, 12)),
                            rng.normal(size=(n_images, 1, 12))], 1).reshape(-1, 12)
    tc = np.repeat(cats, 2, axis=0).reshape(n_images, 4)  # each category spoken twice
    toks = (P_tok[tc] + 0.3 * rng.normal(size=(n_images, 4, 16))).reshape(-1, 16)
    return Split(np.array([f"i{k}" for k in range(n_images)], dtype=object), toks.astype(np.float32),
                 np.repeat(np.arange(n_images), 4), np.array([f"w{c}" for c in tc.ravel()], dtype=object),
                 frags.astype(np.float32), np.repeat(np.arange(n_images), 3))


TOY_CFG = dict(frames=1, embed_dim=16, image_layers=[], speech_layers=[32], relu_cap=None, init_scale=4.0,
               l2=1e-4, max_norm=6.0, rho=0.95, eps=1e-6, batch_images=1, epochs=6, patience=3,
               curve_images=20)


def _test_ranks(model, test):
    with torch.no_grad():
        return task_ranks(model.embed_tokens(torch.as_tensor(test.tokens)), model.embed_images(torch.as_tensor(test.frags)),
                          test.tok_image, test.tok_word, test.frag_image, len(test.image_ids))


def test_training_learns_the_toy_far_above_the_random_projection(tmp_path):
    train, dev, test = _toy(120, 1), _toy(30, 2), _toy(30, 3)
    model, init, info = train_model(train, dev, TOY_CFG, 0, tmp_path / "ck.pt", device="cpu")
    h = info["history"]
    assert h[0]["epoch"] == 0 and len(h) == info["epochs_run"] + 1
    best = h[info["best_epoch"]]
    assert h[0]["dev"]["cos_same"] < h[0]["dev"]["cos_diff"]  # untrained: no preference
    assert best["dev"]["cos_same"] > best["dev"]["cos_diff"] + 0.05  # same pairs pulled together
    assert best["dev"]["loss_per_pair"] < h[0]["dev"]["loss_per_pair"] - 0.02
    for layer in model.linears():
        assert (layer.weight.norm(dim=1) <= 6.0 + 1e-5).all()
    random_net = CoscosNet(12, 16, 16, [], [32])
    random_net.load_state_dict(init)
    trained, rand = _test_ranks(model, test), _test_ranks(random_net, test)
    # 90 fragments, 3 per image: a random ranking finds the token's image in the top 10 ≈ 30% of the time
    t, r = summary(trained["image_token_by_word"]), summary(rand["image_token_by_word"])
    assert t["R@10"] > 60 and t["R@10"] > r["R@10"] + 30, (t, r)
    # a fragment's nearest token names its object: median rank 1 (2 of 8 types are relevant)
    t, r = summary(trained["word_type_by_image"]), summary(rand["word_type_by_image"])
    assert t["median_rank"] == 1 and r["median_rank"] > 3, (t, r)


def test_killed_training_resumes_to_identical_weights(tmp_path):
    train, dev = _toy(40, 1), _toy(12, 2)
    cfg = {**TOY_CFG, "epochs": 3, "patience": 3}
    ref, _, ref_info = train_model(train, dev, cfg, 5, tmp_path / "a.pt", device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train_model(train, dev, cfg, 5, tmp_path / "b.pt", stop_after_epoch=1, device="cpu")
    resumed, _, info = train_model(train, dev, cfg, 5, tmp_path / "b.pt", device="cpu")
    for k, v in ref.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert [h["dev"] for h in info["history"]] == [h["dev"] for h in ref_info["history"]]
    # another seed is another run: the checkpoint of seed 5 is ignored
    other, _, _ = train_model(train, dev, cfg, 6, tmp_path / "b.pt", device="cpu")
    assert not torch.equal(other.speech[0].weight, ref.speech[0].weight)


@pytest.fixture()
def tiny_files(tmp_path):
    """Utterances, segments, fbank.h5 and regions.h5 of 3 images (train, dev, test)."""
    utts = pd.DataFrame({"utt_id": ["a0", "a1", "b0", "c0"], "image_id": ["A", "A", "B", "C"],
                         "split": ["train", "train", "dev", "test"],
                         "transcript": ["a red dog on the grass", "the dog is red", "a red bus", "two dogs"]})
    utts.to_csv(tmp_path / "utts.tsv", sep="\t", index=False)
    seg = []
    for u, text in zip(utts.utt_id, utts.transcript):
        seg += [(u, i, w.upper() if w == "dog" else w, 0.1 * i, 0.1 * i + (0.05 if w == "grass" else 1.0))
                for i, w in enumerate(text.split())]
    pd.DataFrame(seg, columns=["utt_id", "index", "word", "start", "end"]).to_csv(tmp_path / "seg.tsv", sep="\t",
                                                                                   index=False)
    with h5py.File(tmp_path / "fb.h5", "w") as h5:
        h5.attrs.update(num_mel_bins=2, frame_shift_ms=10.0)
        for u in utts.utt_id:
            h5.create_dataset(f"feats/{u}", data=np.arange(1, 121, dtype=np.float32)[:, None].repeat(2, 1))
    with h5py.File(tmp_path / "regions.h5", "w") as h5:
        h5.create_dataset("image_ids", data=np.array(["A", "B", "C"], dtype=object), dtype=h5py.string_dtype())
        h5.create_dataset("features", data=np.arange(3 * 4 * 3, dtype=np.float32).reshape(3, 4, 3))
        h5.create_dataset("n_proposals", data=np.array([3, 1, 0], np.int16))
    return tmp_path


CFG_TOKENS = {"frames": 7, "min_train_count": 2, "stop_words": ["a", "the", "on", "is", "two", "zebra"]}


def test_content_word_tokens_and_their_report(tiny_files):
    p = tiny_files
    rep = select_tokens(p / "utts.tsv", p / "seg.tsv", p / "fb.h5", CFG_TOKENS, p / "tok.tsv", p / "rep.json", "speech")
    tok = pd.read_csv(p / "tok.tsv", sep="\t")
    # train counts: red 2, dog 2, grass 1 → vocabulary {red, dog}; "bus" and "dogs" never twice in train
    assert sorted(set(tok.word)) == ["dog", "red"]  # aligner case ("DOG") folded
    assert rep["per_split"]["train"]["tokens"] == 4 and rep["per_split"]["dev"]["tokens"] == 1
    assert rep["per_split"]["test"]["captions_without_content_word"] == 1  # "two dogs": none left
    assert rep["dropped_words"] == {"stop_word": 7, "rare_in_train": 3, "rare_types": 3, "utterance_without_features": 0}
    assert rep["stop_words_unused"] == ["zebra"]  # not a word of the corpus: simply unused
    assert rep["tokens_longer_than_window"] == 5 and rep["token_dim"] == 14  # 1 s words > 7 frames


def test_foreign_segments_and_vanished_features_are_errors_naming_the_files(tiny_files):
    p = tiny_files
    seg = pd.read_csv(p / "seg.tsv", sep="\t")
    pd.concat([seg, seg.assign(utt_id="zz9")]).to_csv(p / "seg2.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"seg2\.tsv: 15 words of utterances not in .*utts\.tsv.*'zz9'"):
        select_tokens(p / "utts.tsv", p / "seg2.tsv", p / "fb.h5", CFG_TOKENS, p / "tok.tsv", p / "rep.json", "speech")
    select_tokens(p / "utts.tsv", p / "seg.tsv", p / "fb.h5", CFG_TOKENS, p / "tok.tsv", p / "rep.json", "speech")
    with h5py.File(p / "fb.h5", "a") as h5:
        del h5["feats/a1"]
    with pytest.raises(ValueError, match=r"fb\.h5: no features for 'a1', listed in .*tok\.tsv.*--forcerun"):
        load_split(p / "tok.tsv", p / "fb.h5", p / "regions.h5", p / "utts.tsv", "train", 7)


def test_tokens_are_centred_windows_and_fragments_exclude_padding(tiny_files):
    p = tiny_files
    select_tokens(p / "utts.tsv", p / "seg.tsv", p / "fb.h5", {**CFG_TOKENS, "frames": 121}, p / "tok.tsv",
                  p / "rep.json", "speech")
    d = load_split(p / "tok.tsv", p / "fb.h5", p / "regions.h5", p / "utts.tsv", "train", 121)
    assert d.sizes() == {"images": 1, "tokens": 4, "types": 2, "fragments": 4, "images_with_tokens": 1}
    w = d.tokens[0].reshape(121, 2)[:, 0]  # "red" of a0: frames 10..109 (100 frames) padded to 121
    assert (w[:10] == 0).all() and (w[110:] == 0).all() and w[10] == 11 and w[109] == 110
    dev = load_split(p / "tok.tsv", p / "fb.h5", p / "regions.h5", p / "utts.tsv", "dev", 121)
    assert len(dev.frags) == 2  # whole frame + 1 proposal; rows 2, 3 are padding copies


def test_tables_put_model_beside_random_and_paper(tmp_path):
    run = {"seed": 0, "best_epoch": 2, "epochs_run": 4,
           "model": {t: [1, 2, 3, 0] for t in ("word_similarity", "word_token_by_image", "word_type_by_image",
                                                "image_token_by_word")},
           "random": {t: [4, 8, 12, 0] for t in ("word_similarity", "word_token_by_image", "word_type_by_image",
                                                 "image_token_by_word")}}
    row = {"system": "speech", "label": "aligner word times", "sizes": {"tokens": 4, "types": 2, "fragments": 4,
                                                                       "images": 2}, "queries": {}, "runs": [run, run]}
    row["queries"] = {t: 3 for t in run["model"]}
    (tmp_path / "r.json").write_text(json.dumps(row))
    res = write_tables([tmp_path / "r.json"], [1, 5, 10, 25], tmp_path / "o.json", tmp_path / "o.md", tmp_path / "o.html")
    t = res["systems"][0]["tables"]
    assert t["model"]["word_token_by_image"]["median_rank"] == {"mean": 2.0, "sd": 0.0}
    assert t["random"]["image_token_by_word"]["R@10"]["mean"] == pytest.approx(200 / 3)
    md = (tmp_path / "o.md").read_text()
    assert "| Word Token Search by Image | published (Pascal1K + LUCID) | 93.0 | 293.39 | 40.0 | 72.52 |" in md
    assert ("| Image Token Search by Word | aligner word times | 0.0 ± 0.0 | 33.3 ± 0.0 | 66.7 ± 0.0 | 100.0 ± 0.0 | "
            "33.3 ± 0.0 | 100.0 ± 0.0 |") in md
