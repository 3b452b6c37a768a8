"""The whole pipeline on the tiny preset, started the way users start it: the main job, the HTML
report, selective reruns after a parameter change, and resuming after a SIGKILL."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, SEEDS, SHARDS, TINY, planned_jobs, snakemake, write_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    cfg = write_config(work / "tiny.yaml")
    snakemake(work, configfile=cfg)  # the default target: rule all
    return work, cfg


def _recall(work):
    return json.loads((work / "results" / "flickr8k_recall.json").read_text())


def test_main_job_writes_all_rows_logs_and_benchmarks(tiny_run):
    work, cfg = tiny_run
    recall = _recall(work)
    rows = {r["system"]: r for r in recall["rows"]}
    caption = {f"caption:{s}{m}" for s in ("davenet2017", "matchmap", "milan") for m in ("", ":untrained")}
    assert set(rows) == {"speech", "oracle", "text", "asr_general", "asr_caption", "random"} | caption
    for s in caption:
        assert set(rows[s]["columns"]) == {"P@1 (3 pairs)", "P@5 (3 pairs)", "P@10 (3 pairs)"}
    for lm in ("general", "caption"):  # the cascade: the text model on ASR hypotheses, WER beside it
        row, wer = rows[f"asr_{lm}"], json.loads((work / f"results/asr/{lm}/wer.json").read_text())["wer"]
        assert row["columns"]["ASR WER % (test)"] == wer["test"]["wer"] and 0 < wer["test"]["wer"] <= 100
        hashes = lambda r: [run["train_config_hash"] for run in r["runs"]]
        assert hashes(row) == hashes(rows["text"])  # the same trained models, every seed
        assert row["paper"] == {"seed": "milan2021_cascade", "row": "Speech→ASR→Text"}
    for row in rows.values():
        seeds = 0 if row["system"] == "random" else 1 if row["system"] in caption else SEEDS  # {fragment,caption}.seeds
        assert row["n_runs"] == seeds
        assert row["sizes"]["images"] == TINY["splits"]["test"]
        assert row["sizes"]["captions"] == 5 * TINY["splits"]["test"]
        for direction in ("search", "annotation"):
            r = row["test"][direction]
            assert 0 <= r["R@1"] <= r["R@5"] <= r["R@10"] <= 100 and r["median_rank"] >= 1
    assert "Spectrogram CNN" in (work / "results" / "flickr8k_recall.md").read_text()
    logs = {p.stem for p in (work / "results" / "logs").glob("*.log")}
    benches = {p.stem for p in (work / "results" / "benchmarks").glob("*.tsv")}
    assert logs == benches and len(logs) >= 25  # every job: a log and a benchmark
    for fig in ("alignments", "regions", "conv1_filters", "word_window", "coscos_curves"):
        assert (work / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000
    for system in ("davenet2017", "matchmap", "milan"):
        assert (work / "results" / "caption" / system / "training.png").stat().st_size > 10_000
        assert (work / "results" / "caption" / system / "towers.pt").stat().st_size > 10_000
    patterns = work / "results" / "patterns" / "davenet2017"
    for fig in ("fig1", "fig2", "fig3", "fig4"):
        assert (patterns / f"{fig}.png").stat().st_size > 10_000
    grounding = json.loads((patterns / "grounding_report.json").read_text())
    assert grounding["captions"] == 5 * TINY["splits"]["train"] and grounding["groundings"] >= grounding["captions"]
    assert "Table 3 analogue" in (patterns / "tables.md").read_text()
    assert planned_jobs(work, configfile=cfg) == {}  # nothing left to do


def _h5_arrays(path):
    """{dataset name: array} of every dataset in an HDF5 file."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return out


VOLATILE = {"timing"}  # wall-clock measurements inside a row
SOURCES = "sources"  # an HDF5 cache's record of its input files (path, size, mtime): differs by design


def test_run_to_run_identity(tiny_run, tmp_path):
    """The tiny main job again from scratch in another directory: the same recall rows (every seed's
    ranks) and the same arrays in every HDF5 output, so a table in a note can be reproduced exactly."""
    import numpy as np

    work, _ = tiny_run
    again = tmp_path / "again"
    snakemake(again, configfile=write_config(tmp_path / "tiny.yaml"))
    rows = lambda w: [{k: v for k, v in r.items() if k not in VOLATILE} for r in _recall(w)["rows"]]
    assert rows(again) == rows(work)
    h5s = sorted(p.relative_to(work) for p in work.rglob("*.h5"))
    assert len(h5s) >= 12  # 9 before the patterns stage, + vad, groundings, clusters
    assert h5s == sorted(p.relative_to(again) for p in again.rglob("*.h5"))
    for rel in h5s:
        a, b = _h5_arrays(work / rel), _h5_arrays(again / rel)
        assert a.keys() == b.keys() and a, rel
        for name in a.keys() - {SOURCES}:
            assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), \
                f"{rel}:{name} differs between identical runs"
    for seg in work.glob("results/*/*/word_segments.tsv"):  # alignments of both corpora
        assert seg.read_bytes() == (again / seg.relative_to(work)).read_bytes(), seg
    coscos = sorted(work.glob("results/coscos/*/ranks.json"))  # every test rank of every coscos seed
    assert len(coscos) == 2
    for p in coscos:
        ranks = lambda q: json.loads(q.read_text())["runs"]
        assert ranks(p) == ranks(again / p.relative_to(work)), p
    print(f"identical: {len(rows(work))} recall rows, {len(h5s)} HDF5 files "
          f"({sum(len(_h5_arrays(work / r)) for r in h5s)} datasets)")


def test_html_report(tiny_run):
    work, cfg = tiny_run
    snakemake(work, "--report", "results/report.html", configfile=cfg)
    html = (work / "results" / "report.html").read_text(errors="replace")
    for name in ("flickr8k_recall.json", "alignments.png", "conv1_filters.png", "regions.png", "coscos_curves.png",
                 "ranks.html", "grounding_report.json", "fig3.png"):
        assert name in html


FRAGMENT = {"fragment_train": 3 * SEEDS, "fragment_evaluate": 5, "asr_row": 2, "recall_table": 1, "fragment_figures": 1,
            "all": 1}  # 3 systems trained; the 2 cascade rows evaluate the text system's models
# what a new word corpus (other windows or other cut times) reruns: the word nets and the audio rows
WORDNETS = {"wordcnn_train": 3, "wordcnn_figures": 1, "wordcnn_table2": 1, "wordcnn_vectors": 2,
            **FRAGMENT, "fragment_train": 2 * SEEDS, "fragment_evaluate": 2, "asr_row": 0}
COSCOS = {"coscos_train": 2, "coscos_evaluate": 2, "coscos_tables": 1, "coscos_figure": 1, "all": 1}
# what new davenet2017 towers rerun: every patterns job but the VAD
PATTERNS = {"patterns_ground": 1, "patterns_compare": 1, "patterns_cluster": 1, "patterns_evaluate": 1,
            "patterns_figures": 1}


@pytest.mark.parametrize("change, expected", [
    ({"vision": {"gpus": 1}, "wordcnn": {"gpus": 2}, "fragment": {"gpus": 3}, "caption": {"gpus": 4},
      "coscos": {"gpus": 1}, "patterns": {"gpus": 1, "threads": 1}}, {}),  # resources only
    ({"fragment": {"embed_dim": 256}}, FRAGMENT),
    ({"fragment": {"seeds": [0, 1, 7]}},  # one more seed: one more job per system, the rows again
     {"fragment_train": 3, "fragment_evaluate": 5, "asr_row": 2, "recall_table": 1, "all": 1}),
    ({"coscos": {"max_norm": 4.0}}, COSCOS),
    ({"coscos": {"seeds": [0, 1]}}, COSCOS),  # seed 0 is kept: the 2 training jobs are seed 1 of each system
    ({"coscos": {"min_train_count": 3}}, {"coscos_tokens": 2, **COSCOS}),
    ({"vision": {"nms_iou": 0.4}},  # the fc caption systems read regions.h5 too, the matchmap one does not
     {"vision_regions": SHARDS["vision_regions"], "vision_regions_merge": 1, "vision_figure": 1,
      "vision_proposal_quality": 1, **FRAGMENT, **COSCOS,
      "caption_train": 4, "caption_evaluate": 4, "caption_figure": 2, "caption_towers": 2, **PATTERNS}),
    ({"caption": {"systems": {"milan": {"lr": 0.01}}}},  # one system: its trained and (R) rows
     {"caption_train": 2, "caption_evaluate": 2, "caption_figure": 1, "caption_towers": 1, "recall_table": 1,
      "all": 1}),
    ({"caption": {"defaults": {"max_frames": 500}}},
     {"caption_train": 6, "caption_evaluate": 6, "caption_figure": 3, "caption_towers": 3, "recall_table": 1,
      "all": 1, **PATTERNS}),
    # groundings are cached: clustering keys rerun clustering and what reads it, label keys the tables
    ({"patterns": {"cluster": {"ks": [5, 10]}, "table3": {"k": 10}}},
     {"patterns_cluster": 1, "patterns_evaluate": 1, "patterns_figures": 1, "all": 1}),
    ({"patterns": {"prune": [0.5], "visual_iou": 0.7}}, {"patterns_evaluate": 1, "all": 1}),
    ({"patterns": {"grounding": {"max_keep": 5}}}, {**PATTERNS, "all": 1}),
    ({"patterns": {"vad": {"threshold": 0.6}}}, {"patterns_vad": 1, "patterns_vad_report": 1, **PATTERNS, "all": 1}),
    ({"caption": {"systems": {"matchmap": {"paper": None}}}},  # its rows' labels only: no training
     {"caption_evaluate": 2, "recall_table": 1, "all": 1}),
    ({"caption": {"systems": {"milan": {"untrained_row": False}}}},  # a row less: the table and its figure
     {"caption_figure": 1, "recall_table": 1, "all": 1}),
    ({"speech": {"windows": {"frames": 80}}}, {"speech_windows": 2, "wordcorpus_windows": 1, **WORDNETS}),
    ({"word_corpus": {"source": "synthetic", "times": "ctm"}}, {"wordcorpus_windows": 1, **WORDNETS}),
    ({"speech": {"pocketsphinx": {"beam": 1.0e-90}}},  # both corpora are cut by the caption aligner
     {"speech_align": SHARDS["speech_align"], "speech_align_merge": 1, "speech_windows": 1,
      "wordcorpus_align": 1, "wordcorpus_windows": 1, **WORDNETS,
      "coscos_tokens": 1, **COSCOS, "coscos_train": 1, "coscos_evaluate": 1,
      "patterns_vad_report": 1, "patterns_evaluate": 1, "patterns_figures": 1}),  # patterns: labels, not groundings
    ({"speech": {"ssl": {"layer": 3}}}, {}),  # features: fbank reads no ssl key
    # the extra targets' keys (pretraining corpus, length sweep) change nothing of the main job
    ({"caption": {"pretrain": {"epochs": 5, "corpus": {"preset": "tiny", "seed": 3}}, "length_sweep": {"seconds": [2]}}}, {}),
    ({"asr": {"decoder": {"lw": 8.0}}},
     {"asr_decode": 2, "fragment_textvec": 2, "fragment_evaluate": 2, "asr_row": 2, "recall_table": 1, "all": 1}),
    ({"asr": {"caption_lm": {"discount_mass": 0.4}}},
     {"asr_caption_lm": 1, "asr_decode": 1, "fragment_textvec": 1, "fragment_evaluate": 1, "asr_row": 1,
      "recall_table": 1, "all": 1}),
])
def test_changed_parameter_reruns_its_stage_and_descendants_only(tiny_run, tmp_path, change, expected):
    """Only the changed key, merged over the defaults (the text row needs no speech, so a window or
    aligner change retrains the speech and oracle rows only; the aligner cuts the word corpus too, so
    the oracle row sees a new word CNN; coscos cuts its own tokens from the features, so the 1 s
    windows do not concern it)."""
    work, _ = tiny_run
    expected = {k: v for k, v in expected.items() if v}
    assert planned_jobs(work, configfile=write_config(tmp_path / "c.yaml", **change)) == expected


def test_killed_training_resumes_from_its_checkpoint(tiny_run, tmp_path):
    """SIGKILL the whole run while the word CNN trains; rerun the same command: training resumes from
    the last checkpoint and runs the remaining epochs, every row is rebuilt, and no half-written
    output is accepted."""
    import torch

    work, cfg = tiny_run
    killed = tmp_path / "killed"
    shutil.copytree(work, killed, symlinks=True)
    cnn = killed / "results" / "wordcnn" / "cnn"
    (cnn / "checkpoint.pt").unlink(missing_ok=True)
    args = ["--forcerun", "results/wordcnn/cnn/model.pt"]  # retrain the CNN and everything after it
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(killed), "--cores", "2",
           *args, "--configfile", str(cfg), "--", "results/flickr8k_recall.json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not (cnn / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(cnn / "checkpoint.pt", weights_only=False)
    epochs, first_epochs = killed_at["state"]["epoch"], killed_at["state"]["history"]
    assert 1 <= epochs < json.loads((work / "results/wordcnn/cnn/metrics.json").read_text())["epochs"], "not killed mid-training"
    assert not (cnn / "model.pt").exists()
    snakemake(killed, "--unlock", configfile=cfg)
    snakemake(killed, *args, targets=["results/flickr8k_recall.json"], configfile=cfg)
    assert f"after epoch {epochs}" in (killed / "results" / "logs" / "wordcnn_train_cnn.log").read_text()
    # the resumed job continued the checkpoint's training: its first epochs are the checkpoint's, not
    # recomputed, and it ran the rest.  Bit-identity of resumed weights is asserted in one process by
    # tests/test_wordcnn.py::test_resume_after_kill_is_identical; across processes on a loaded machine
    # the resumed weights have been seen to differ in float round-off that grows over the epochs.
    history = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    metrics = [json.loads((w / "results/wordcnn/cnn/metrics.json").read_text()) for w in (work, killed)]
    assert not (cnn / "checkpoint.pt").exists()  # a finished job leaves no checkpoint
    assert len(metrics[1]["history"]) == metrics[0]["epochs"] and metrics[1]["classes"] == metrics[0]["classes"]
    assert history(metrics[1]["history"][:epochs]) == history(first_epochs)
    rows = lambda w: {r["system"]: r for r in _recall(w)["rows"]}
    assert rows(killed).keys() == rows(work).keys()
    print(f"killed after epoch {epochs}; speech row uninterrupted {rows(work)['speech']['test']}, "
          f"resumed {rows(killed)['speech']['test']}")


def test_ssl_front_end_end_to_end(tiny_run, tmp_path):
    """speech.features: ssl with a tiny random wav2vec 2.0 (built here, loaded by path): a missing
    checkpoint stops rule speech_ssl before any audio is read; the real one feeds every consumer of
    frame features -- caption and word-corpus windows (1 s = 50 frames of 16 dims), the word CNN
    (its filters span the 16 dims), word vectors and the speech rows, the whole-caption dual encoders
    (first layers span the 16 dims; max_frames 1024 x 10 ms = 512 frames of 20 ms) and their rows --
    and nothing else reruns."""
    import h5py
    import torch

    from test_ssl import tiny_ssl_model

    work, _ = tiny_run
    ssl_work = tmp_path / "ssl"
    shutil.copytree(work, ssl_work, symlinks=True)
    missing = tmp_path / "no-such-model"
    bad = write_config(tmp_path / "bad.yaml", speech={"features": "ssl", "ssl": {"checkpoint": str(missing)}})
    proc = snakemake(ssl_work, targets=["results/speech/ssl.h5"], configfile=bad, check=False)
    log = (ssl_work / "results/logs/speech_ssl.log").read_text()
    assert proc.returncode != 0 and f"speech.ssl.checkpoint = '{missing}': no such directory" in log
    assert not (ssl_work / "results/speech/ssl.h5.partial").exists()  # stopped before any work

    model = tiny_ssl_model(tmp_path / "tiny-wav2vec2")
    short = {s: {"epochs": 2} for s in ("davenet2017", "matchmap", "milan")}  # they retrain anyway: keep it short
    cfg = write_config(tmp_path / "ssl.yaml", speech={"features": "ssl", "ssl": {"checkpoint": str(model), "layer": 1}},
                       wordcnn={"epochs": 3}, caption={"systems": short, "defaults": {"untrained_row": False}})
    snakemake(ssl_work, "--unlock", configfile=cfg)
    target = "results/flickr8k_recall.json"
    assert planned_jobs(ssl_work, target, configfile=cfg) == {
        "speech_ssl": 1, "wordcorpus_ssl": 1, "speech_windows": 2, "wordcorpus_windows": 1, "wordcnn_train": 1,
        "wordcnn_vectors": 2, "fragment_train": 2 * SEEDS, "fragment_evaluate": 2, "caption_train": 3,
        "caption_evaluate": 3, "recall_table": 1}
    snakemake(ssl_work, targets=[target], configfile=cfg)
    res = ssl_work / "results"
    with h5py.File(res / "speech/ssl.h5") as f:
        assert (f.attrs["dim"], f.attrs["frame_shift_ms"], f.attrs["checkpoint"]) == (16, 20.0, str(model))
    for windows in ("speech/pocketsphinx/caption_windows.h5", "speech/oracle/caption_windows.h5", "wordcorpus/windows.h5"):
        with h5py.File(res / windows) as f:
            assert f["windows"].shape[1:] == (50, 16), windows
    cnn = torch.load(res / "wordcnn/cnn/model.pt", weights_only=False)["state_dict"]
    assert cnn["mean"].shape == (50, 16) and cnn["front.0.weight"].shape == (64, 1, 16, 5)
    with h5py.File(res / "speech/pocketsphinx/word_vectors.h5") as f:
        assert f["vectors"].shape[1] == 1024 and f["vectors"].shape[0] > 0
    rows, before = ({r["system"]: r for r in _recall(w)["rows"]} for w in (ssl_work, work))
    assert rows["speech"]["runs"] != before["speech"]["runs"]  # other features, other ranks
    assert rows["text"] == before["text"]  # untouched
    assert rows["speech"]["sizes"]["captions"] == 5 * TINY["splits"]["test"]
    milan = json.loads((res / "caption/milan/trained/seed0/train.json").read_text())
    assert {k: milan["train_sizes"][k] for k in ("feat_dim", "frame_shift_ms", "max_frames")} == \
        {"feat_dim": 16, "frame_shift_ms": 20.0, "max_frames": 512}
    cnn = torch.load(res / "caption/davenet2017/trained/seed0/model.pt", weights_only=False)["audio"]
    assert cnn["spec"]["feat_dim"] == 16 and cnn["state"]["convs.0.weight"].shape[1] == 16
    assert rows["caption:milan"]["runs"] != before["caption:milan"]["runs"]
    test = json.loads((res / "caption/milan/trained/metrics.json").read_text())["test_report"]
    assert (test["frame_shift_ms"], test["max_frames"], test["feat_dim"]) == (20.0, 512, 16)


def test_pretrain_then_finetune_and_length_sweep(tiny_run, tmp_path, monkeypatch):
    """caption.pretrain: a second tiny corpus (seed 1) through the same rules under results/pretrain/,
    milan pretrained on it and fine-tuned on the main corpus from those weights (its first record:
    the pretrained model's dev recall on the main corpus), a table of both rows; the length sweep
    (1 and 2 s).  Nothing of the main run reruns.  The reduced vision route of the second corpus
    (one candidate box) gives the whole-frame row of the full stage exactly."""
    import h5py
    import numpy as np

    from vgs.caption.data import load_split
    from vgs.caption.train import evaluate_split, load_model
    from vgs.vision.stage import build_regions

    work, _ = tiny_run
    w = tmp_path / "pre"
    shutil.copytree(work, w, symlinks=True)
    cfg = write_config(tmp_path / "pre.yaml", caption={"pretrain": {"corpus": {"preset": "tiny", "seed": 1}, "epochs": 3},
                                                       "length_sweep": {"seconds": [1, 2]}})
    targets = ["results/caption/pretrain.md", "results/caption/length_sweep.md"]
    assert planned_jobs(w, *targets, configfile=cfg) == {
        "pretrain_synthetic_corpus": 1, "pretrain_vision_export_onnx": 1, "pretrain_corpus_manifest": 1,
        "pretrain_ingest": 1, "pretrain_speech_fbank": SHARDS["speech_fbank"],
        "pretrain_vision_regions": SHARDS["vision_regions"], "pretrain_speech_fbank_merge": 1,
        "pretrain_vision_regions_merge": 1, "pretrain_caption_train": 1, "caption_train": 3, "caption_evaluate": 3,
        "caption_sweep": 1, "caption_pretrain": 1}
    snakemake(w, targets=targets, configfile=cfg)
    res = w / "results"
    ids = [(res / d / "manifests/utterances.tsv").read_text() for d in ("", "pretrain")]
    assert ids[0] != ids[1]  # another corpus
    fine = json.loads((res / "caption/milan/finetuned/seed0/train.json").read_text())
    assert fine["config"]["init"] == "results/pretrain/caption/milan/trained/seed0/model.pt"
    pre, _ = load_model(res / "pretrain/caption/milan/trained/seed0/model.pt")
    dev = load_split(res / "speech/fbank.h5", res / "vision/regions.h5", "fc", res / "manifests/utterances.tsv", "dev", 1024)
    assert fine["init_dev"]["dev"] == evaluate_split(pre, dev)[0]
    table = json.loads((res / "caption/pretrain.json").read_text())
    assert [r["init"] for r in table["rows"]] == ["none (from scratch)", "pretrained 3 epochs (preset tiny, seed 1)"]
    rows = [json.loads((res / f"caption/milan/{m}/metrics.json").read_text()) for m in ("trained", "finetuned")]
    assert rows[0]["runs"][0]["ranks"] != rows[1]["runs"][0]["ranks"]
    assert "| none (from scratch) |" in (res / "caption/pretrain.md").read_text()
    sweep = json.loads((res / "caption/length_sweep.json").read_text())
    assert [r["fixed_seconds"] for r in sweep["rows"]] == [1, 2]
    for s in (1, 2):
        assert json.loads((res / f"caption/milan/len{s}/metrics.json").read_text())["test_report"]["pad_to"] == 100 * s
    # the second corpus's vision route: row 0 (the whole frame) as the full stage computes it
    with h5py.File(res / "vision/regions.h5") as f:
        full, params = f["features"][:, 0], json.loads(f.attrs["config"])
    params.update(detections=1, max_candidates=1)
    monkeypatch.chdir(w)  # the manifest's image paths are relative to the working directory
    build_regions("results/manifests/images.tsv", "resources/models/efficientnet-lite0-224.onnx", tmp_path / "r.h5",
                  tmp_path / "r.json", params)
    with h5py.File(tmp_path / "r.h5") as f:
        np.testing.assert_allclose(f["features"][:, 0], full, rtol=1e-4, atol=1e-5)
