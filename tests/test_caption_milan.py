"""MILAN's comparisons on the whole-caption models (issue 12): lengths in the features' own frames
(log-mels 10 ms, ssl 20 ms), captions cropped and padded to a fixed length, a run started from a
pretrained model, and the sweep tables (length, initialisation)."""
import json

import h5py
import numpy as np
import pytest
import torch

from vgs.caption.data import load_split, pad_batch
from vgs.caption.evaluate import evaluate_system
from vgs.caption.sweep import markdown, sweep_table
from vgs.caption.toy import make_toy, subset, write_toy_files
from vgs.caption.train import build_model, evaluate_split, fingerprint, load_model, run_training, train_model

torch.set_num_threads(1)
CFG = dict(audio="resdavenet", image="fc", similarity="dot", loss="infonce", optimizer="adam", lr=3e-3,
           lr_decay=1.0, lr_decay_every=5, momentum=0.9, weight_decay=0.0, batch_size=10, epochs=2, width=0.0625,
           max_frames=1024, margin=1.0, temperature=0.1, normalize="both", image_kernel=1, grid=3,
           mode="trained", seed=0)
SPLITS = (("train", 20), ("dev", 5), ("test", 5))
FRAMES = (60, 140)  # captions of 0.6-1.4 s at 10 ms: some longer than the 1 s fixed length


def _files(tmp_path, shift_ms=10.0):
    fc, _ = write_toy_files(tmp_path, splits=SPLITS, frames=FRAMES)
    with h5py.File(tmp_path / "fbank.h5", "a") as f:
        f.attrs["frame_shift_ms"] = shift_ms
    return fc, [tmp_path / n for n in ("fbank.h5", "regions.h5")], tmp_path / "utterances.tsv"


@pytest.mark.parametrize("shift_ms", [10.0, 20.0])
def test_lengths_are_converted_to_the_features_frame_shift(tmp_path, shift_ms):
    """max_frames counts 10 ms frames, fixed_seconds seconds, whatever the features' shift: 40 (10 ms)
    frames = 40 log-mel or 20 ssl frames; 1 s = 100 or 50 frames, every caption cropped and
    zero-padded to exactly that (lengths = the fixed length: the padding is input)."""
    fc, (feats, regions), utts = _files(tmp_path, shift_ms)
    limit = 40 if shift_ms == 10 else 20
    d = load_split(feats, regions, "fc", utts, "train", 40)
    assert d.lengths.max() == limit and d.pad_to is None
    assert d.report["max_frames"] == limit and d.report["frame_shift_ms"] == shift_ms
    n = 100 if shift_ms == 10 else 50
    d = load_split(feats, regions, "fc", utts, "train", 1024, fixed_seconds=1)
    assert d.pad_to == n and d.lengths.max() == n and d.report["pad_to"] == n and d.report["truncated"] > 0
    idx = np.arange(6)
    x, L = pad_batch(d.frames, d.offsets, idx, d.pad_to)
    assert x.shape == (6, n, fc.frames.shape[1]) and L.tolist() == [n] * 6
    for j, c in enumerate(idx):  # content first (cropped), zeros after
        t = int(d.lengths[c])
        np.testing.assert_array_equal(x[j, :t].numpy(), d.frames[d.offsets[c]:d.offsets[c + 1]])
        assert not x[j, t:].any()
    x, L = pad_batch(d.frames, d.offsets, idx)  # without pad_to: the batch's longest, true lengths
    assert x.shape[1] == d.lengths[idx].max() and L.tolist() == d.lengths[idx].tolist()


def test_a_feature_file_without_frame_shift_is_an_error_naming_it(tmp_path):
    _, (feats, regions), utts = _files(tmp_path)
    with h5py.File(feats, "a") as f:
        del f.attrs["frame_shift_ms"]
    with pytest.raises(ValueError, match=f"{feats}: no attribute 'frame_shift_ms'"):
        load_split(feats, regions, "fc", utts, "train", 40)


def test_fixed_length_runs_train_and_evaluate_with_the_fixed_length(tmp_path):
    """A len<S> point: training and test both read captions cropped and padded to S seconds."""
    _, (feats, regions), utts = _files(tmp_path)
    cfg = dict(CFG, fixed_seconds=1)
    info = run_training(feats, regions, utts, cfg, tmp_path / "ck.pt", tmp_path / "model.pt", tmp_path / "h.json")
    assert info["train_sizes"]["pad_to"] == 100 and info["dev_sizes"]["pad_to"] == 100
    ecfg = {"ks": [1, 5, 10], "pairs": 100, "seed": 0, "mem_mb": 64}
    row = evaluate_system([tmp_path / "model.pt"], feats, regions, utts, ecfg, tmp_path / "m.json", "milan", "len1",
                          device="cpu")
    assert row["test_report"]["pad_to"] == 100 and row["label"].startswith("milan, captions cropped and padded to 1 s")
    assert fingerprint(cfg) != fingerprint(CFG) and fingerprint(dict(CFG, fixed_seconds=None)) == fingerprint(CFG)


def test_a_finetuned_run_starts_from_the_pretrained_weights(tmp_path):
    """init: the pretrained model's weights (and image statistics) exactly, not the seeded start; the
    pretrained file's content is in the resume fingerprint; another architecture is an error."""
    d = make_toy(n_images=40, seed=5, frames=FRAMES)
    tr, dv = subset(d, 0, 30), subset(d, 30, 40)
    pre_h5 = tmp_path / "pre"
    write_toy_files(pre_h5, splits=SPLITS, seed=7, frames=FRAMES)
    run_training(pre_h5 / "fbank.h5", pre_h5 / "regions.h5", pre_h5 / "utterances.tsv", CFG, tmp_path / "pck.pt",
                 tmp_path / "pre.pt", tmp_path / "pre.json")
    pre, _ = load_model(tmp_path / "pre.pt")
    cfg = dict(CFG, init=str(tmp_path / "pre.pt"))
    start = build_model(cfg, tr.feat_dim, tr.images)
    scratch = build_model(CFG, tr.feat_dim, tr.images)
    for (k, a), b, c in zip(start.state_dict().items(), pre.state_dict().values(), scratch.state_dict().values()):
        assert torch.equal(a, b), k
    assert not torch.equal(start.audio.conv1.weight, scratch.audio.conv1.weight)
    fp = fingerprint(cfg, tr, dv)
    assert fp != fingerprint(CFG, tr, dv)
    # fine-tuning: its first epoch differs from a run from scratch with the same seed
    _, fine = train_model(tr, dv, dict(cfg, epochs=1), tmp_path / "f.pt", device="cpu")
    _, own = train_model(tr, dv, dict(CFG, epochs=1), tmp_path / "s.pt", device="cpu")
    assert fine["history"][0]["loss"] != own["history"][0]["loss"] and "init_dev" not in own
    tab, _, _ = evaluate_split(pre, dv)  # recorded before the first update: the pretrained model's dev recall
    assert fine["init_dev"]["dev"] == tab
    other = tmp_path / "other.pt"  # other weights at the same path: another fingerprint
    other.write_bytes((tmp_path / "pre.pt").read_bytes() + b"\0")
    assert fingerprint(dict(CFG, init=str(other)), tr, dv) != fp
    with pytest.raises(ValueError, match="pre.pt: pretrained model has audio"):
        build_model(dict(cfg, width=0.125), tr.feat_dim, tr.images)


def _row(tmp_path, name, search, annotation):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({
        "system": "caption:milan", "runs": [{"seed": 0, "ranks": {"search": search, "annotation": annotation},
                                             "best_epoch": 3, "best_dev_mean_recall": 12.5}],
        "precision_at_k": {"mean": {"search": {"P@1": 0.25}}},
        "timing": [{"train_cpu_s": 100.0, "train_captions_per_s": 50.0}]}))
    return path


def test_sweep_tables_by_hand(tmp_path):
    """One writer for every swept key: lengths sorted, labels (initialisation) kept in order."""
    a = _row(tmp_path, "a", [1, 2, 11, 1], [1, 1])     # search R@1 50, R@5 75, R@10 75; annotation 100
    b = _row(tmp_path, "b", [3, 12, 20, 30], [6, 2])   # search R@1 0, R@5 25, R@10 25; annotation R@5 50
    rows = sweep_table([b, a], [12, 4], [1, 5, 10], "fixed_seconds")
    assert [r["fixed_seconds"] for r in rows] == [4, 12]
    assert rows[0]["test"]["search"] == {"R@1": 50.0, "R@5": 75.0, "R@10": 75.0, "median_rank": 1.5, "n_queries": 4}
    assert rows[1]["test"]["annotation"]["R@5"] == 50.0
    md = markdown(rows, [1, 5, 10], "milan", 20, "fixed_seconds")
    assert "# Length sweep of `milan`" in md and "| 4 | 50.0 | 75.0 | 75.0 | 100.0 | 100.0 | 100.0 | 0.25 | 3 |" in md
    rows = sweep_table([b, a], ["none (from scratch)", "pretrained"], [1, 5, 10], "init")
    assert [r["init"] for r in rows] == ["none (from scratch)", "pretrained"]
    md = markdown(rows, [1, 5, 10], "milan", 20, "init")
    assert "| none (from scratch) | 0.0 | 25.0 | 25.0 |" in md and "+ NO PRETRAINING" in md
