"""Word-net pretraining, Table 2, word vectors (vgs.wordcnn) on small generated windows."""
import json

import h5py
import numpy as np
import pytest
import torch

from vgs.wordcnn.data import read_meta, split_tokens
from vgs.wordcnn.models import WordNet, load_model
from vgs.wordcnn.report import table2, unseen_vocabulary
from vgs.wordcnn.train import train
from vgs.wordcnn.vectors import extract_vectors

torch.set_num_threads(1)
PARAMS = dict(arch="cnn", min_tokens=10, test_fraction=0.2, split="stratified", seed=0,
              optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=0.0, dropout=0.5,
              epochs=3, batch_size=32, threads=1)


def templates(n_words, seed):
    """One smooth random log-mel pattern per word, of a word-dependent length."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_words):
        length = rng.integers(25, 70)
        t = rng.normal(size=(length // 5 + 2, 8))
        t = np.kron(t, np.ones((5, 5)))[:length, :40]  # blocky time x mel pattern
        out.append(t.astype(np.float32))
    return out


def render(tpl, rng, spk_offset):
    """A token: the word's pattern, centred in 100 frames with jitter, speaker shift, noise."""
    x = np.zeros((100, 40), np.float32)
    start = 50 - len(tpl) // 2 + rng.integers(-3, 4)
    x[start:start + len(tpl)] = tpl * rng.uniform(0.8, 1.2) + spk_offset
    return x + rng.normal(scale=0.3, size=x.shape).astype(np.float32)


def write_windows(path, words, windows, utt_ids, index, speakers=None):
    s = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f["windows"] = np.stack(windows).astype(np.float32)
        f.create_dataset("words", data=np.array(words, dtype=object), dtype=s)
        f.create_dataset("utt_ids", data=np.array(utt_ids, dtype=object), dtype=s)
        f["index"] = np.asarray(index, np.int64)
        f["start"] = np.arange(len(words), dtype=np.float64) * 0.5
        f["end"] = f["start"][()] + 0.4
        if speakers is not None:
            f.create_dataset("speakers", data=np.array(speakers, dtype=object), dtype=s)


def word_corpus(path, n_words=5, tokens=30, n_spk=6, seed=0, rare=()):
    """Isolated-word windows (the WSJ role): `tokens` per word, plus 3 tokens of each rare word."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(n_words)] + list(rare)
    tpl = templates(len(vocab), seed)
    spk_off = rng.normal(scale=0.3, size=(n_spk, 40)).astype(np.float32)
    words, wins, spk = [], [], []
    for w, t in zip(vocab, tpl):
        for k in range(3 if w in rare else tokens):
            s = k % n_spk
            words.append(w), wins.append(render(t, rng, spk_off[s])), spk.append(f"s{s}")
    n = len(words)
    write_windows(path, words, wins, [f"u{i}" for i in range(n)], np.zeros(n), spk)
    return vocab, tpl


def caption_windows(path, tpl, vocab, n_utts=12, seed=1, shuffle=True):
    """Caption words (some out of vocabulary) in shuffled row order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_utts):
        for j in range(rng.integers(2, 6)):
            w = rng.integers(len(vocab) + 2)
            word, t = (vocab[w], tpl[w]) if w < len(vocab) else (f"oov{w}", tpl[0][::-1])
            rows.append((f"cap{u:02d}", j, word, render(t, rng, 0)))
    if shuffle:
        rows = [rows[i] for i in rng.permutation(len(rows))]
    write_windows(path, [r[2] for r in rows], [r[3] for r in rows], [r[0] for r in rows],
                  [r[1] for r in rows])
    return rows


@pytest.mark.parametrize("arch,n_params", [("cnn", 3008 * 1024), ("dnn2", 4000 * 1024), ("dnn3", 4000 * 1024)])
def test_forward_shapes(arch, n_params):
    torch.manual_seed(0)
    m = WordNet(arch, 7).eval()
    x = torch.randn(3, 100, 40)
    assert m(x).shape == (3, 7)
    assert m.embed(x).shape == (3, 1024)
    assert (m.embed(x) >= 0).all()  # post-ReLU embedding
    assert m.hidden[0].weight.numel() == n_params  # first FC sees 64x1x47 (cnn) or 100x40 inputs
    assert len([l for l in m.hidden if isinstance(l, torch.nn.Linear)]) == (3 if arch == "dnn3" else 2)


def test_conv_lrn_pool_geometry():
    torch.manual_seed(0)
    m = WordNet("cnn", 3).eval()
    conv, relu, lrn, pool = m.front
    x = torch.randn(2, 1, 40, 100)  # (N, 1, mels, frames)
    c = relu(conv(x))
    assert c.shape == (2, 64, 3, 96)  # 40 + 2 pad - 40 + 1 = 3 rows; 100 - 5 + 1 = 96 frames
    n = lrn(c)
    # Caffe across-channel LRN: x / (1 + alpha/5 * sum_{|j-i|<=2} x_j^2)^beta
    i = 10
    denom = (1 + 1e-4 / 5 * (c[:, i - 2:i + 3] ** 2).sum(1)) ** 0.75
    assert torch.allclose(n[:, i], c[:, i] / denom, atol=1e-6)
    p = pool(n)
    assert p.shape == (2, 64, 1, 47)  # pool 3 high (stride 1), 4 wide (stride 2)
    assert torch.allclose(p[0, 5, 0, 3], n[0, 5, :, 6:10].max())
    # padding is on the mel axis only: the padded rows see a shifted 39-band spectrum
    x2 = x.clone()
    x2[..., 0, :] = 0
    assert torch.allclose(conv(x2)[:, :, 2], conv(x)[:, :, 2])  # bottom row ignores band 0


def test_split_stratified_and_speaker():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in rng.integers(0, 6, 600)] + ["rare"] * 5, dtype=object)
    spk = np.array([f"s{i % 10}" for i in range(len(words))], dtype=object)
    classes, labels, tr, te = split_tokens(words, spk, 10, 0.2, "stratified", 0)
    assert "rare" not in classes and len(classes) == 6
    assert not set(tr) & set(te) and len(tr) + len(te) == 600
    for c in range(6):
        n_c = (labels == c).sum()
        assert abs((labels[te] == c).sum() - round(0.2 * n_c)) <= 1
    again = split_tokens(words, spk, 10, 0.2, "stratified", 0)
    assert np.array_equal(again[3], te)  # seeded
    assert not np.array_equal(split_tokens(words, spk, 10, 0.2, "stratified", 1)[3], te)
    classes, labels, tr, te = split_tokens(words, spk, 10, 0.2, "speaker", 0)
    assert not set(spk[tr]) & set(spk[te]) and len(set(spk[te])) == 2


def test_learns_separable_toy(tmp_path):
    word_corpus(tmp_path / "w.h5", n_words=5, tokens=30)
    m = train(tmp_path / "w.h5", tmp_path / "m.pt", tmp_path / "m.json", PARAMS)
    assert m["classes"] == 5 and m["test_tokens"] == 30
    assert m["top1"] > 0.9 and m["top5"] == 1.0  # chance is 0.2
    assert m["train_windows_per_s"] > 0 and m["inference_windows_per_s"] > 0
    assert not (tmp_path / "checkpoint.pt").exists()


def test_conv1_diagnostics_and_moved_figure(tmp_path):
    """The first layer's numbers: how far each filter moved from its (stored) init, and top-1 with conv1
    re-randomised or reset — a net that relies on what conv1 learned falls towards chance (0.2)."""
    from vgs.wordcnn.figures import plot_conv1_moved

    word_corpus(tmp_path / "w.h5", n_words=5, tokens=30)
    m = train(tmp_path / "w.h5", tmp_path / "m.pt", tmp_path / "m.json", {**PARAMS, "conv1_init_std": 0.01})
    c = m["conv1"]
    assert len(c["relative_change"]) == 64 and min(c["relative_change"]) > 0
    assert c["relative_change_median"] == pytest.approx(np.median(c["relative_change"]), abs=1e-4)
    model, ck = load_model(tmp_path / "m.pt")
    w0 = ck["conv1_init"]
    assert w0.shape == (64, 1, 40, 5) and float(w0.std()) == pytest.approx(0.01, rel=0.05)  # N(0, 0.01)
    assert c["norm_init"] == pytest.approx(float(w0.norm()), rel=1e-5)
    assert c["norm_learned"] == pytest.approx(float((model.conv1.weight - w0).norm()), rel=1e-5)
    assert c["top1_conv1_rerandomised"] < m["top1"] - 0.3 and c["top1_conv1_reset_to_init"] <= m["top1"]
    torch.manual_seed(0)
    assert torch.equal(WordNet("cnn", 5, conv1_init_std=0.01).conv1.weight, w0)  # the init is the seed's
    plot_conv1_moved(tmp_path / "m.pt", tmp_path / "moved.png")
    assert (tmp_path / "moved.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_after_kill_is_identical(tmp_path):
    word_corpus(tmp_path / "w.h5", n_words=4, tokens=15)
    p = {**PARAMS, "arch": "dnn2", "epochs": 2}
    ref = train(tmp_path / "w.h5", tmp_path / "a" / "m.pt", tmp_path / "a" / "m.json", p)

    class Killed(Exception):
        pass

    def kill(epoch):
        if epoch == 1:
            raise Killed

    out = tmp_path / "b"
    with pytest.raises(Killed):
        train(tmp_path / "w.h5", out / "m.pt", out / "m.json", p, on_epoch_end=kill)
    assert (out / "checkpoint.pt").exists() and not (out / "m.pt").exists()
    res = train(tmp_path / "w.h5", out / "m.pt", out / "m.json", p)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert len(res["history"]) == 2 and strip(res["history"]) == strip(ref["history"])
    assert res["top1"] == ref["top1"] and res["history"][1]["loss"] == ref["history"][1]["loss"]
    a, b = load_model(tmp_path / "a" / "m.pt")[0], load_model(out / "m.pt")[0]
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    # a stale checkpoint (other parameters) is ignored, not resumed
    torch.save({"fingerprint": "other"}, out / "checkpoint.pt")
    train(tmp_path / "w.h5", out / "m.pt", out / "m.json", p)


def test_word_vectors_layout_and_table2(tmp_path):
    vocab, tpl = word_corpus(tmp_path / "w.h5", n_words=5, tokens=20, rare=("rare",))
    rows = caption_windows(tmp_path / "cap.h5", tpl, vocab)
    train(tmp_path / "w.h5", tmp_path / "cnn" / "model.pt", tmp_path / "cnn" / "metrics.json",
          {**PARAMS, "epochs": 1})
    rep = extract_vectors(tmp_path / "cnn" / "model.pt", tmp_path / "cap.h5", tmp_path / "vec.h5",
                          tmp_path / "vec.json", batch_size=7)
    model, ck = load_model(tmp_path / "cnn" / "model.pt")
    src = read_meta(tmp_path / "cap.h5")
    with h5py.File(tmp_path / "cap.h5") as f:
        cw = f["windows"][()]
    with h5py.File(tmp_path / "vec.h5") as f:
        v, sr, offs = f["vectors"][()], f["source_row"][()], f["utt_offsets"][()]
        utts = [u.decode() for u in f["utterances"][()]]
        words = [w.decode() for w in f["words"][()]]
        utt_ids = np.array([u.decode() for u in f["utt_ids"][()]])
        index = f["index"][()]
        assert v.dtype == np.float32 and v.shape == (len(rows), 1024)
        assert np.array_equal(f["start"][()], src["start"][sr])
    assert sorted(sr.tolist()) == list(range(len(rows)))  # a permutation of caption rows
    assert words == list(src["words"][sr])
    with torch.inference_mode():
        np.testing.assert_allclose(v, model.embed(torch.from_numpy(cw[sr])).numpy(), atol=1e-5)
    assert len(utts) == 12 and offs[0] == 0 and offs[-1] == len(rows)
    for u, a, b in zip(utts, offs[:-1], offs[1:]):
        assert (utt_ids[a:b] == u).all() and list(index[a:b]) == list(range(b - a))
    assert rep["captions"] == 12
    # a file already in caption order (the speech stage's layout) is read by slices: same vectors
    caption_windows(tmp_path / "cap2.h5", tpl, vocab, shuffle=False)
    extract_vectors(tmp_path / "cnn" / "model.pt", tmp_path / "cap2.h5", tmp_path / "vec2.h5", batch_size=7)
    with h5py.File(tmp_path / "vec2.h5") as f, h5py.File(tmp_path / "cap2.h5") as g:
        assert np.array_equal(f["source_row"][()], np.arange(len(rows)))
        with torch.inference_mode():
            np.testing.assert_allclose(f["vectors"][()], model.embed(torch.from_numpy(g["windows"][()])).numpy(),
                                       atol=1e-5)
    # unseen vocabulary: 'oov*' and the rare word ('rare' has 3 < 10 tokens) are unseen
    cap_types = {r[2] for r in rows}
    exp = len({w for w in cap_types if w.startswith("oov") or w == "rare"}) / len(cap_types)
    assert "rare" in cap_types and 0 < exp < 1
    assert unseen_vocabulary(src["words"], ck["classes"])["unseen_type_fraction"] == pytest.approx(exp)
    out = table2([tmp_path / "cnn" / "metrics.json"], tmp_path / "cnn" / "model.pt", tmp_path / "cap.h5",
                 tmp_path / "t2.json", tmp_path / "t2.md")
    assert out["rows"][0]["paper_top1"] == 84.2
    assert json.loads((tmp_path / "t2.json").read_text())["caption_vocabulary"]["unseen_type_fraction"] == pytest.approx(exp)
    assert "84.2" in (tmp_path / "t2.md").read_text()


def test_figures(tmp_path):
    from vgs.wordcnn.figures import plot_filters, plot_word_window
    word_corpus(tmp_path / "w.h5", n_words=3, tokens=10)
    torch.save({"arch": "cnn", "classes": ["a", "b"], "state_dict": WordNet("cnn", 2).state_dict()},
               tmp_path / "m.pt")
    plot_filters(tmp_path / "m.pt", tmp_path / "f.png")
    plot_word_window(tmp_path / "w.h5", tmp_path / "w.png")
    for f in ("f.png", "w.png"):
        assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
    torch.save({"arch": "dnn2", "classes": ["a", "b"], "state_dict": WordNet("dnn2", 2).state_dict()},
               tmp_path / "d.pt")
    with pytest.raises(ValueError, match="no convolutional layer"):
        plot_filters(tmp_path / "d.pt", tmp_path / "d.png")
