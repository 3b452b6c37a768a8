"""Issue 5's bad-input table, end to end: one damaged utterance or image per case in a copy of the tiny
corpus, the real pipeline (corpus: flickr8k) run up to the recall JSON, and for each case the named
skip, failure or conversion count asserted — and that every other utterance reaches word vectors."""
import io
import json
import shutil
import subprocess

import h5py
import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torchaudio.functional as AF
import yaml

from conftest import TINY, snakemake
from vgs.speech.audio import signal_problem

NEW_WORDS = ("zorblax", "café")  # out of every dictionary (G2P) and non-ASCII


def _damage(root):
    """Damage a copy of the corpus; returns {case: utt_id or image_id}."""
    wavs, txt = root / "flickr_audio" / "wavs", root / "Flickr8k_text"
    capt = (root / "flickr_audio" / "wav2capt.txt").read_text().splitlines()
    tok_file = txt / "Flickr8k.token.txt"
    tokens = tok_file.read_text().splitlines()
    train = (txt / "Flickr_8k.trainImages.txt").read_text().split()
    utts = [line.split()[0][:-4] for line in capt]
    bad_image = train[0][:-4]
    # one utterance per case, each from a different image, none of them the corrupt image's
    pick = iter(u for u in utts if u.endswith("_1") and not u.startswith(bad_image))
    case = {k: next(pick) for k in ("empty", "truncated", "stereo", "rate44k", "clipped", "silent",
                                     "oov", "unalignable", "wrong_audio", "no_audio", "no_caption")}
    case["bad_image"] = bad_image
    read = lambda u: sf.read(wavs / f"{u}.wav", dtype="float32")[0]

    (wavs / f"{case['empty']}.wav").write_bytes(b"")
    data = (wavs / f"{case['truncated']}.wav").read_bytes()
    (wavs / f"{case['truncated']}.wav").write_bytes(data[: len(data) // 2])  # header still promises all
    x = read(case["stereo"])
    sf.write(wavs / f"{case['stereo']}.wav", np.stack([x, 0.5 * x], 1), 16000, subtype="PCM_16")
    x = AF.resample(torch.from_numpy(read(case["rate44k"])), 16000, 44100).numpy()
    sf.write(wavs / f"{case['rate44k']}.wav", x, 44100, subtype="PCM_16")
    sf.write(wavs / f"{case['clipped']}.wav", np.clip(20 * read(case["clipped"]), -1, 1), 16000, subtype="PCM_16")
    sf.write(wavs / f"{case['silent']}.wav", np.zeros_like(read(case["silent"])), 16000, subtype="PCM_16")
    # OOV + non-ASCII caption: edit the token line and re-synthesise, so audio and text agree and
    # the only thing under test is the lexicon (a mismatch is the 'wrong_audio' case below)
    i = next(i for i, t in enumerate(tokens) if t.startswith(case["oov"].rsplit("_", 1)[0] + ".jpg#1\t"))
    words = tokens[i].split("\t")[1].split()
    caption = " ".join(words[:2] + list(NEW_WORDS) + words[2:])
    tokens[i] = tokens[i].split("\t")[0] + "\t" + caption
    speak = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", caption], capture_output=True, check=True).stdout
    x, sr = sf.read(io.BytesIO(speak), dtype="float32")
    x = AF.resample(torch.from_numpy(x), sr, 16000).numpy()
    sf.write(wavs / f"{case['oov']}.wav", x, 16000, subtype="PCM_16")
    # unalignable: a well-formed wav cut to its first 0.4 s, far too short for its ~10-word transcript
    sf.write(wavs / f"{case['unalignable']}.wav", read(case["unalignable"])[:6400], 16000, subtype="PCM_16")
    # wrong audio: the recording of a different, longer caption of another image
    other = max((u for u in utts if not u.startswith(case["wrong_audio"][:-2]) and u not in case.values()),
                key=lambda u: len(read(u)))
    shutil.copy(wavs / f"{other}.wav", wavs / f"{case['wrong_audio']}.wav")
    jpeg = (root / "Flickr8k_Dataset" / f"{bad_image}.jpg").read_bytes()
    (root / "Flickr8k_Dataset" / f"{bad_image}.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    capt = [c for c in capt if not c.startswith(case["no_audio"] + ".wav")]  # caption, wav unlisted
    (root / "flickr_audio" / "wav2capt.txt").write_text("\n".join(capt) + "\n")
    stem, n = case["no_caption"].rsplit("_", 1)
    tokens = [t for t in tokens if not t.startswith(f"{stem}.jpg#{n}\t")]  # recording, no caption
    tok_file.write_text("\n".join(tokens) + "\n")
    return case


def test_bad_input_table_end_to_end(tiny_flickr, tiny_words, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(tiny_flickr, root)
    case = _damage(root)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "corpus": "flickr8k", "flickr8k": {"root": str(root)}, "synthetic": {"preset": "tiny"},
        "word_corpus": {"source": "kaldi", "kaldi_dir": str(tiny_words), "ctm": str(tiny_words / "words.ctm")},
        "ingest": {"max_skip_fraction": 0.3},
        "wordcnn": {"epochs": 3}, "fragment": {"epochs": 3}}))  # vectors and recall needed, not accuracy
    work = tmp_path / "work"
    snakemake(work, targets=["results/flickr8k_recall.json"], configfile=cfg)
    _check(work / "results", case)


def _check(res, case):
    load = lambda p: json.loads((res / p).read_text())
    ingest, fbank, align = load("manifests/ingest_report.json"), load("speech/fbank_report.json"), \
        load("speech/pocketsphinx/alignment_report.json")

    # ingest: named, counted skips
    skips = {}
    for s in ingest["skips"]:
        skips.setdefault(s["file"].rsplit("/", 1)[-1], []).append((s["kind"], s["reason"]))
    assert ingest["skipped"] == {"bad_image": 1, "image_unusable": 5, "bad_wav": 2, "wav_not_in_wav2capt": 1,
                                 "caption_without_audio": 3, "audio_without_caption": 1}
    assert skips[f"{case['bad_image']}.jpg"][0][0] == "bad_image" and "unreadable image" in skips[f"{case['bad_image']}.jpg"][0][1]
    assert skips[f"{case['empty']}.wav"] == [("bad_wav", "empty file (0 bytes)")]
    assert skips[f"{case['truncated']}.wav"][0][0] == "bad_wav" and "truncated" in skips[f"{case['truncated']}.wav"][0][1]
    assert [k for k, _ in skips[f"{case['no_audio']}.wav"]] == ["wav_not_in_wav2capt"]
    assert skips[f"{case['no_caption']}.wav"][0][0] == "audio_without_caption"
    no_audio = {s["reason"].split(" ")[0]: s["reason"].split(": ")[1] for s in ingest["skips"]
                if s["kind"] == "caption_without_audio"}
    cap = lambda k: case[k].rsplit("_", 1)[0] + ".jpg#1"
    assert no_audio == {cap("no_audio"): "not in wav2capt.txt", cap("empty"): "its recording was skipped (see above)",
                        cap("truncated"): "its recording was skipped (see above)"}
    utts = pd.read_csv(res / "manifests/utterances.tsv", sep="\t").set_index("utt_id")
    assert len(utts) == 5 * TINY["images"] - 5 - 4
    assert utts.loc[case["stereo"], "channels"] == 2 and utts.loc[case["rate44k"], "sample_rate"] == 44100
    assert utts.loc[case["oov"], "transcript"].split()[2:4] == list(NEW_WORDS)

    # features: conversions and signal problems counted by name, nothing skipped
    assert (fbank["stored"], fbank["skipped"], fbank["resampled"], fbank["downmixed"]) == (len(utts), 0, 1, 1)
    assert fbank["clipped_utterances"] == [case["clipped"]] and fbank["silent_utterances"] == [case["silent"]]

    # alignment: new words pronounced by G2P, the silent and the mismatched recording named failures
    assert set(NEW_WORDS) <= set(align["lexicon"]["oov_from_g2p"]) and not align["lexicon"]["oov_unpronounceable"]
    failed = {f["utt_id"]: f["reason"] for f in align["failures"]}
    assert set(failed) == {case["silent"], case["unalignable"]}, failed
    assert failed[case["silent"]].startswith("silent_audio")
    assert failed[case["unalignable"]].startswith("no_alignment") and "in 0.40 s of audio, 3 beam" in failed[case["unalignable"]]
    # known limit: forced alignment with wide beams fits any transcript to any speech, and
    # pocketsphinx gives no usable confidence, so a recording of another caption is not detected
    assert case["wrong_audio"] not in failed

    # everything else reaches word vectors, in spoken order, with the new words
    with h5py.File(res / "speech/pocketsphinx/word_vectors.h5", "r") as h5:
        with_vectors = set(h5["utterances"].asstr()[()])
        words, utt_ids = h5["words"].asstr()[()], h5["utt_ids"].asstr()[()]
    assert with_vectors == set(utts.index) - set(failed)
    assert list(words[utt_ids == case["oov"]]) == utts.loc[case["oov"], "transcript"].split()
    win = load("speech/pocketsphinx/windows_report.json")
    assert win["utterances"] == len(with_vectors) and win["skipped_words_no_features"] == 0
    regions = load("vision/regions_stats.json")
    assert regions["images_total"] == TINY["images"] - 1 and regions["skipped"] == []
    # the job finished on what survived: every test caption with word vectors is a query
    speech = next(r for r in load("flickr8k_recall.json")["rows"] if r["system"] == "speech")
    test_utts = utts[utts.index.isin(with_vectors) & (utts.split == "test")]
    assert speech["test"]["search"]["n_queries"] == len(test_utts)


def test_signal_problem_thresholds():
    t = np.arange(16000) / 16000
    speech = 0.5 * np.sin(2 * np.pi * 200 * t) * np.hanning(16000)
    assert signal_problem(speech) is None
    assert signal_problem(np.clip(20 * speech, -1, 1)) == "clipped"
    assert signal_problem(np.clip(1.0015 * speech / 0.5, -1, 1)) is None  # a few peaks touching full scale
    assert signal_problem(np.zeros(16000)) == "silent" and signal_problem(3e-5 * speech) == "silent"
    assert signal_problem(np.zeros(0)) == "silent"
