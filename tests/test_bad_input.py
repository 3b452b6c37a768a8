"""The bad-input tables (docs/bad-input.md), end to end: one damaged utterance or image per case in a
copy of the tiny corpus, the real pipeline (corpus: flickr8k) run up to the recall JSON, and for each
case the named skip, failure or conversion count asserted, at the earliest stage that can see it —
and that every other utterance reaches word vectors and every other image regions.  The classes'
other cases are tested one by one on small files (tests/test_hostile_input.py)."""
import io
import json
import re
import os
import shutil
import subprocess

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from PIL import Image

from conftest import TINY, planned_jobs, snakemake, write_config
from vgs.corpus.text import normalise
from vgs.speech.audio import signal_problem

NEW_WORDS = ("zorblax", "café")  # out of every dictionary (G2P) and non-ASCII


def _damage(root):
    """Damage a copy of the corpus; returns {case: utt_id or image_id}."""
    wavs, txt, aud = root / "flickr_audio" / "wavs", root / "Flickr8k_text", root / "flickr_audio"
    capt = (aud / "wav2capt.txt").read_text().splitlines()
    tok_file = txt / "Flickr8k.token.txt"
    tokens = tok_file.read_text().splitlines()
    train = (txt / "Flickr_8k.trainImages.txt").read_text().split()
    utts = [line.split()[0][:-4] for line in capt]
    bad_image = train[-1][:-4]  # not train[0]: the first line of every text file gets a BOM below
    # images: a corrupt one, a 1x1 pixel one, an EXIF-rotated one, greyscale, PNG (never the first
    # recording's image, which carries the BOM case)
    spare = [t[:-4] for t in train[1:-1] if not utts[0].startswith(t[:-4])]
    gray, png, tiny_image, exif = spare[:4]
    # one utterance per case, each from a different image, none of them the unusable images'; the
    # wrong-audio case gets the shortest caption (the known limit: any speech long enough fits it)
    usable = lambda u: not u.startswith((bad_image, tiny_image))
    n_words = {t.split("#")[0][:-4] + "_" + t.split("#")[1].split("\t")[0]: len(t.split()) for t in tokens}
    case = {"wrong_audio": min((u for u in utts[1:] if u.endswith("_0") and usable(u)), key=n_words.get)}
    pick = iter(u for u in utts if u.endswith("_1") and usable(u))
    case.update({k: next(pick) for k in ("empty", "truncated", "stereo", "rate44k", "clipped", "silent",
                                          "oov", "unalignable", "no_audio", "no_caption")})
    read = lambda u: sf.read(wavs / f"{u}.wav", dtype="float32")[0]
    # wrong audio (below): the recording of a different, longer caption of another image
    other = max((u for u in utts if not u.startswith(case["wrong_audio"][:-2]) and u not in case.values()),
                key=lambda u: len(read(u)))
    pick2 = iter(u for u in utts if u.endswith("_2") and usable(u))
    case.update({k: next(pick2) for k in ("nan", "inf", "huge", "dup_line", "dup_wav", "two_captions",
                                           "two_speakers")})
    case.update(bad_image=bad_image, gray=gray, png=png, bom=utts[0], tiny_image=tiny_image, exif=exif)
    # recordings that cannot be what their caption says, files that are no files, captions in
    # hostile text: each at ingest, one per image (the _3 recordings)
    pick3 = iter(u for u in utts if u.endswith("_3") and usable(u) and u != other)
    case.update({k: next(pick3) for k in ("repeated", "rate100", "dc", "dangling", "wavdir", "typed", "nul",
                                           "leading_space", "punct")})

    (wavs / f"{case['empty']}.wav").write_bytes(b"")
    data = (wavs / f"{case['truncated']}.wav").read_bytes()
    (wavs / f"{case['truncated']}.wav").write_bytes(data[: len(data) // 2])  # header still promises all
    x = read(case["stereo"])
    sf.write(wavs / f"{case['stereo']}.wav", np.stack([x, 0.5 * x], 1), 16000, subtype="PCM_16")
    x = AF.resample(torch.from_numpy(read(case["rate44k"])), 16000, 44100).numpy()
    sf.write(wavs / f"{case['rate44k']}.wav", x, 44100, subtype="PCM_16")
    sf.write(wavs / f"{case['clipped']}.wav", np.clip(20 * read(case["clipped"]), -1, 1), 16000, subtype="PCM_16")
    sf.write(wavs / f"{case['silent']}.wav", np.zeros_like(read(case["silent"])), 16000, subtype="PCM_16")
    sf.write(wavs / f"{case['repeated']}.wav", np.tile(read(case["repeated"]), 20), 16000, subtype="PCM_16")
    sf.write(wavs / f"{case['rate100']}.wav", read(case["rate100"]), 100, subtype="PCM_16")
    sf.write(wavs / f"{case['dc']}.wav", np.full(32000, 0.25), 16000, subtype="PCM_16")
    (wavs / f"{case['dangling']}.wav").unlink()
    (wavs / f"{case['dangling']}.wav").symlink_to(wavs / "moved_away.wav")
    (wavs / f"{case['wavdir']}.wav").unlink()
    (wavs / f"{case['wavdir']}.wav").mkdir()
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
    shutil.copy(wavs / f"{other}.wav", wavs / f"{case['wrong_audio']}.wav")
    jpeg = (root / "Flickr8k_Dataset" / f"{bad_image}.jpg").read_bytes()
    (root / "Flickr8k_Dataset" / f"{bad_image}.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    capt = [c for c in capt if not c.startswith(case["no_audio"] + ".wav")]  # caption, wav unlisted
    capt = [" " + c if c.startswith(case["leading_space"] + ".wav") else c for c in capt]
    # the same words typed with an emoji glued on, a zero-width space and typographic quotes; a NUL
    # byte; a caption of punctuation only
    for k, edit in (("typed", lambda c: "\u201c" + c.replace(" ", "\U0001F436 ", 1).replace(" ", "\u200b", 2) + "\u201d"),
                    ("nul", lambda c: c.replace(" ", " \x00", 1)), ("punct", lambda c: "... !")):
        stem, n = case[k].rsplit("_", 1)
        i = next(i for i, t in enumerate(tokens) if t.startswith(f"{stem}.jpg#{n}\t"))
        case[f"{k}_caption"] = tokens[i].split("\t")[1]
        tokens[i] = tokens[i].split("\t")[0] + "\t" + edit(case[f"{k}_caption"])
    stem, n = case["no_caption"].rsplit("_", 1)
    tokens = [t for t in tokens if not t.startswith(f"{stem}.jpg#{n}\t")]  # recording, no caption

    # issue 15: float audio with one NaN / one +inf sample (a counted bad_wav at ingest), or with
    # finite samples so large (1e20) that the features overflow (a counted skip in fbank_report)
    for k, value in (("nan", np.nan), ("inf", np.inf)):
        x = read(case[k])
        x[len(x) // 2] = value
        sf.write(wavs / f"{case[k]}.wav", x, 16000, subtype="FLOAT")
    sf.write(wavs / f"{case['huge']}.wav", 1e20 * read(case["huge"]), 16000, subtype="FLOAT")
    line = next(c for c in capt if c.startswith(case["dup_line"] + ".wav"))
    stolen = next(c for c in capt if c.endswith("#3") and not c.startswith(case["dup_wav"][:-2]))
    capt += [line, f"{case['dup_wav']}.wav {stolen.split()[1]} #3"]  # a repeat; a wav for two captions
    key = case["two_captions"].rsplit("_", 1)[0] + ".jpg#2"
    tokens += [tokens[0], f"{key}\tA purple giraffe is flying over the sea ."]  # a repeat; a key twice
    spk = (aud / "wav2spk.txt").read_text() + f"{case['two_speakers']}.wav 999\n"
    (aud / "wav2spk.txt").write_bytes(spk.replace("\n", "\r\n").encode())  # Windows line ends
    images = root / "Flickr8k_Dataset"
    Image.new("RGB", (1, 1), (200, 0, 0)).save(images / f"{case['tiny_image']}.jpg", "JPEG")
    with Image.open(images / f"{case['exif']}.jpg") as im:  # stored turned, tagged to be shown upright
        im.load()
        case["exif_upright"] = str(root.parent / "exif_upright.png")
        im.save(case["exif_upright"])
        exif = Image.Exif()
        exif[0x0112] = 6
        im.transpose(Image.Transpose.ROTATE_90).save(images / f"{case['exif']}.jpg", "JPEG", quality=95, exif=exif)
    for name in (case["gray"], case["png"]):  # a greyscale JPEG; PNG bytes behind a .jpg name
        path = root / "Flickr8k_Dataset" / f"{name}.jpg"
        with Image.open(path) as im:
            (im.convert("L") if name == case["gray"] else im).save(path, "JPEG" if name == case["gray"] else "PNG")
    bom = b"\xef\xbb\xbf"  # a byte-order mark on the first line of three text files
    (aud / "wav2capt.txt").write_bytes(bom + ("\n".join(capt) + "\n").encode())
    tok_file.write_bytes(bom + ("\n".join(tokens) + "\n").encode())
    split = txt / "Flickr_8k.trainImages.txt"
    split.write_bytes(bom + split.read_bytes())
    return case


def _config(tmp_path, root, words):
    return write_config(
        tmp_path / "c.yaml", corpus="flickr8k", flickr8k={"root": str(root)},
        word_corpus={"source": "kaldi", "kaldi_dir": str(words), "ctm": str(words / "words.ctm")},
        ingest={"max_skip_fraction": 0.6},
        wordcnn={"epochs": 3}, fragment={"epochs": 3, "seeds": [0]},  # vectors and recall needed, not accuracy
        # the cascade on every split (the silent recording is in one of them), trained on ASR text too
        asr={"lms": ["caption"], "splits": ["train", "dev", "test"], "train_on_asr": True})


# what the checks read: every stage the damaged inputs pass through, up to the rows of the speech and
# cascade systems (the whole-caption and coscos stages read the same features and manifests)
TARGETS = ["results/fragment/speech/metrics.json", "results/asr/rows/asr_caption.json",
           "results/asr/rows/asr_caption_trained.json", "results/vision/regions_stats.json"]


@pytest.fixture(scope="module")
def damaged_run(tiny_flickr, tiny_words, tmp_path_factory):
    """The whole pipeline on a corpus with every damage of the table; the corpus and the word
    corpus are copies, so later tests may edit them."""
    tmp = tmp_path_factory.mktemp("bad_input")
    root, words = tmp / "corpus", tmp / "words"
    shutil.copytree(tiny_flickr, root)
    shutil.copytree(tiny_words, words)
    case = _damage(root)
    cfg = _config(tmp, root, words)
    work = tmp / "work"
    snakemake(work, targets=TARGETS, configfile=cfg)
    return work, cfg, root, case


def test_bad_input_table_end_to_end(damaged_run):
    work, _, _, case = damaged_run
    _check(work / "results", case)


def _check(res, case):
    load = lambda p: json.loads((res / p).read_text())
    ingest, fbank, align = load("manifests/ingest_report.json"), load("speech/fbank_report.json"), \
        load("speech/pocketsphinx/alignment_report.json")

    # ingest: named, counted skips
    skips = {}
    for s in ingest["skips"]:
        skips.setdefault(s["file"].rsplit("/", 1)[-1], []).append((s["kind"], s["reason"], s["line"]))
    kinds = lambda f: [k for k, _, _ in skips[f]]
    assert ingest["skipped"] == {"bad_image": 2, "image_unusable": 10, "bad_wav": 6, "wav_not_in_wav2capt": 1,
                                 "caption_without_audio": 13, "audio_without_caption": 4, "duplicate_line": 2,
                                 "duplicate_wav": 2, "conflicting_caption": 2, "conflicting_speaker": 2,
                                 "implausible_audio": 5, "control_character": 1, "empty_caption": 1}
    assert kinds(f"{case['bad_image']}.jpg") == ["bad_image"] and "unreadable image" in skips[f"{case['bad_image']}.jpg"][0][1]
    assert skips[f"{case['empty']}.wav"] == [("bad_wav", "empty file (0 bytes)", None)]
    # each check at the earliest stage that can see it: ingest
    assert skips[f"{case['tiny_image']}.jpg"] == [("bad_image", "1x1 px, smaller than 32 px on a side", None)]
    why = lambda k: skips[f"{case[k]}.wav"][0][1] if skips[f"{case[k]}.wav"][0][0] == "implausible_audio" else None
    assert why("silent").startswith("silent: peak") and why("rate100") == "sample rate 100 Hz outside 8000-96000 Hz"
    assert why("dc") == "constant signal: every sample 0.2500 (DC only, no sound)"
    assert re.match(r"speaking rate 0\.\d\d words/s outside 0.5-12: \d+ words in \d+\.\d\d s of voiced", why("repeated"))
    assert re.match(r"speaking rate [2-9]\d\.\d\d words/s outside 0.5-12: \d+ words in 0\.\d\d s of voiced", why("unalignable"))
    assert skips[f"{case['dangling']}.wav"][0][1].startswith("broken symbolic link (to ")
    assert skips[f"{case['wavdir']}.wav"] == [("bad_wav", "is a directory, not a file", None)]
    assert kinds(f"{case['nul']}.wav") == ["audio_without_caption"] and "(control_character: " in skips[f"{case['nul']}.wav"][0][1]
    assert kinds(f"{case['punct']}.wav") == ["audio_without_caption"] and "(empty_caption: " in skips[f"{case['punct']}.wav"][0][1]
    assert kinds(f"{case['truncated']}.wav") == ["bad_wav"] and "truncated" in skips[f"{case['truncated']}.wav"][0][1]
    assert kinds(f"{case['no_audio']}.wav") == ["wav_not_in_wav2capt"]
    assert kinds(f"{case['no_caption']}.wav") == ["audio_without_caption"]
    for k in ("nan", "inf"):  # item 1: the wav named, the count given
        assert skips[f"{case[k]}.wav"] == [("bad_wav", "1 non-finite samples (NaN or ±inf) in float audio", None)]
    # items 2 and 3: repeats collapsed, conflicting entries dropped, each with file and line
    assert sorted((f, line) for f, v in skips.items() for k, _, line in v if k == "duplicate_line") == [
        ("Flickr8k.token.txt", 5 * TINY["images"]), ("wav2capt.txt", 5 * TINY["images"])]
    assert [k for k, _, _ in skips["wav2capt.txt"]] == ["duplicate_line", "duplicate_wav", "duplicate_wav"]
    assert [k for k, _, _ in skips["wav2spk.txt"]] == ["conflicting_speaker"] * 2
    assert kinds(f"{case['two_captions']}.wav") == ["audio_without_caption"]
    assert "given different values" in skips[f"{case['two_captions']}.wav"][0][1]
    no_audio = dict(s["reason"].split(" has no usable recording: ") for s in ingest["skips"]
                    if s["kind"] == "caption_without_audio")
    cap = lambda k, n=1: case[k].rsplit("_", 1)[0] + f".jpg#{n}"
    assert no_audio[cap("no_audio")] == "not in wav2capt.txt"
    lost_rec = {cap("empty"): "empty", cap("truncated"): "truncated", cap("nan", 2): "nan", cap("inf", 2): "inf",
                **{cap(k, 3): k for k in ("repeated", "rate100", "dc", "dangling", "wavdir")},
                cap("silent"): "silent", cap("unalignable"): "unalignable"}
    assert set(no_audio) == {cap("no_audio"), cap("dup_wav", 2), *lost_rec}
    for key, k in lost_rec.items():  # a consequence names its cause
        assert no_audio[key].startswith(f"its recording {case[k]}.wav was skipped ("), (k, no_audio[key])
    assert no_audio[cap("dup_wav", 2)].startswith(f"its recording {case['dup_wav']}.wav: line ")
    utts = pd.read_csv(res / "manifests/utterances.tsv", sep="\t", dtype={"speaker": str}).set_index("utt_id")
    lost = {case[k] for k in ("empty", "truncated", "no_audio", "no_caption", "nan", "inf", "dup_wav", "two_captions",
                              "silent", "unalignable", "repeated", "rate100", "dc", "dangling", "wavdir", "nul", "punct")}
    assert len(utts) == 5 * TINY["images"] - 10 - len(lost) and not lost & set(utts.index)
    assert utts.loc[case["typed"], "transcript"] == normalise(case["typed_caption"])  # the typed words
    assert case["leading_space"] in utts.index  # accepted: no skip names it
    assert not [s for s in ingest["skips"] if case["leading_space"] in s["file"] + s["reason"]]
    assert utts.loc[case["stereo"], "channels"] == 2 and utts.loc[case["rate44k"], "sample_rate"] == 44100
    assert utts.loc[case["oov"], "transcript"].split()[2:4] == list(NEW_WORDS)
    assert utts.loc[case["two_speakers"], "speaker"] == "unknown" and utts.loc[case["bom"], "speaker"] != "unknown"

    # features: conversions and signal problems counted by name; the overflowing wav a named skip
    assert (fbank["stored"], fbank["skipped"], fbank["resampled"], fbank["downmixed"]) == (len(utts) - 1, 1, 1, 1)
    assert fbank["skips"][0]["utt_id"] == case["huge"] and fbank["skips"][0]["path"].endswith(f"{case['huge']}.wav")
    assert re.fullmatch(r"log-mel features not finite \(peak \|sample\| [1-9.]+e\+(19|20)\)", fbank["skips"][0]["problem"])
    assert fbank["clipped_utterances"] == [case["clipped"]] and fbank["silent_utterances"] == []

    # alignment: new words pronounced by G2P; the silent and the too short recording never reach it
    assert set(NEW_WORDS) <= set(align["lexicon"]["oov_from_g2p"]) and not align["lexicon"]["oov_unpronounceable"]
    failed = {f["utt_id"]: f["reason"] for f in align["failures"]}
    assert set(failed) <= {case["huge"]}, failed
    # known limit: forced alignment with wide beams fits any transcript to any speech, and
    # pocketsphinx gives no usable confidence, so a recording of another caption is not detected
    assert case["wrong_audio"] not in failed

    # everything else reaches word vectors, in spoken order, with the new words
    with h5py.File(res / "speech/pocketsphinx/word_vectors.h5", "r") as h5:
        with_vectors = set(h5["utterances"].asstr()[()])
        words, utt_ids = h5["words"].asstr()[()], h5["utt_ids"].asstr()[()]
    assert with_vectors == set(utts.index) - set(failed) - {case["huge"]}
    kept = {case[k] for k in ("bom", "dup_line", "two_speakers", "stereo", "rate44k", "clipped", "oov")}
    converted = {u for u in utts.index if u.rsplit("_", 1)[0] in (case["gray"], case["png"]) and u not in case.values()}
    assert len(converted) >= 4 and kept | converted <= with_vectors
    assert list(words[utt_ids == case["oov"]]) == utts.loc[case["oov"], "transcript"].split()
    win = load("speech/pocketsphinx/windows_report.json")
    assert win["utterances"] == len(with_vectors) and set(win["skipped_utterances"]) <= {case["huge"]}
    regions = load("vision/regions_stats.json")
    assert regions["images_total"] == TINY["images"] - 2 and regions["skipped"] == []  # none left for vision
    # the EXIF-tagged image is read upright: its whole-frame feature is the upright copy's
    from vgs.images import load_image
    from vgs.vision import encoder as enc
    from vgs.vision import proposals as prop

    runner = enc.OnnxEncoder(res.parent / "resources" / "models" / "efficientnet-lite0-224.onnx")
    upright = runner.run(enc.preprocess(prop.full_frame(load_image(case["exif_upright"]), runner.size)[None]),
                         ("features",))["features"][0]
    with h5py.File(res / "vision/regions.h5", "r") as h5:
        ids = list(h5["image_ids"].asstr()[()])
        assert {case["gray"], case["png"], case["exif"]} <= set(ids) and case["tiny_image"] not in ids
        frame = h5["features"][ids.index(case["exif"]), 0]
    assert frame @ upright / np.linalg.norm(frame) / np.linalg.norm(upright) > 0.98
    # the job finished on what survived: every test caption with word vectors is a query
    queries = lambda system: {r["test"]["search"]["n_queries"] for r in load(system)["runs"]}
    test_utts = utts[utts.index.isin(with_vectors) & (utts.split == "test")]
    assert queries("fragment/speech/metrics.json") == {len(test_utts)}

    # ASR: every manifest utterance has a hypothesis, in manifest order (empty ones counted)
    hyps = pd.read_csv(res / "asr/caption/hypotheses.tsv", sep="\t", keep_default_na=False).set_index("utt_id")
    assert list(hyps.index) == list(utts.index)
    wer = load("asr/caption/wer.json")
    assert wer["wer"]["all"]["empty_hypotheses"] == wer["empty_hypotheses"] == len(wer["empty"])
    for system in ("asr_caption", "asr_caption_trained"):
        assert queries(f"asr/rows/{system}.json") == {(utts.split == "test").sum()}


def test_a_damaged_cache_is_an_error_naming_it_and_its_rebuild_command(damaged_run, tmp_path):
    """A truncated regions.h5 (e.g. an interrupted copy) under a rerun of the joint model; the command
    the message gives rebuilds it.  Then text caches cut at a line end."""
    work, cfg, _, _ = damaged_run
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)
    regions = copy / "results" / "vision" / "regions.h5"
    os.truncate(regions, regions.stat().st_size // 2)
    proc = snakemake(copy, "--forcerun", "fragment_train", targets=TARGETS, configfile=cfg, check=False)
    said = proc.stdout + proc.stderr
    # the first job that opens it fails (fragment_train, or another reader of regions.h5 the
    # truncation's new mtime reruns)
    assert proc.returncode != 0 and "Error in rule " in said
    assert "results/vision/regions.h5: cannot read this HDF5 cache (OSError: Unable to synchronously open file " \
           "(truncated file" in said
    assert "Rebuild it with: snakemake --forcerun results/vision/regions.h5" in said
    snakemake(copy, "--forcerun", "results/vision/regions.h5", targets=["results/vision/regions.h5"], configfile=cfg)
    with h5py.File(regions, "r") as h5:
        assert h5.attrs["complete"] and len(h5["image_ids"]) == TINY["images"] - 2
    # text caches cut at a line end (which used to be read silently: vectors for half the captions,
    # regions for half the images): every rule that reads one stops, naming it
    res = copy / "results"
    for name in ("speech/pocketsphinx/word_segments.tsv", "manifests/images.tsv"):
        data = (res / name).read_bytes()[:(res / name).stat().st_size // 2]
        (res / name).write_bytes(data[:data.rindex(b"\n") + 1])
    proc = snakemake(copy, "--keep-going", targets=["results/speech/pocketsphinx/word_vectors.h5",
                                                    "results/vision/regions_stats.json"], configfile=cfg, check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for name in ("speech/pocketsphinx/word_segments.tsv", "manifests/images.tsv"):
        assert re.search(rf"results/{name}: cannot read this TSV cache \(holds \d+ rows; its writer wrote \d+\); "
                         rf"it is damaged or incomplete. Rebuild it with: snakemake --forcerun results/{name}", said), name


def test_a_corpus_edited_in_place_reruns_ingest_and_what_follows(damaged_run):
    """Issue 15, item 4: an untouched corpus reruns nothing; a wav replaced or a caption line
    appended in place reruns the manifest, ingest and every stage after it, and nothing else."""
    work, cfg, root, case = damaged_run
    assert planned_jobs(work, *TARGETS, configfile=cfg) == {}
    # the manifest and every stage after it, as a forced rerun of the manifest plans them
    after_ingest = planned_jobs(work, *TARGETS, configfile=cfg,
                                args=("--forcerun", "results/manifests/corpus_flickr8k.tsv"))
    assert {"ingest", "speech_fbank_merge", "vision_regions_merge", "fragment_train", "asr_decode"} <= after_ingest.keys()
    wavs = root / "flickr_audio" / "wavs"
    shutil.copy(wavs / f"{case['wrong_audio']}.wav", wavs / f"{case['bom']}.wav")
    assert planned_jobs(work, *TARGETS, configfile=cfg) == after_ingest
    snakemake(work, targets=["results/manifests/ingest_report.json"], configfile=cfg)
    assert planned_jobs(work, "results/manifests/ingest_report.json", configfile=cfg) == {}
    tokens = root / "Flickr8k_text" / "Flickr8k.token.txt"
    before = json.loads((work / "results/manifests/ingest_report.json").read_text())["captions"]
    with open(tokens, "a") as fh:
        fh.write(f"{case['bad_image']}.jpg#5\tA caption line added later .\n")
    assert planned_jobs(work, "results/manifests/ingest_report.json", configfile=cfg) == {"corpus_manifest": 1, "ingest": 1}
    snakemake(work, targets=["results/manifests/ingest_report.json"], configfile=cfg)
    assert json.loads((work / "results/manifests/ingest_report.json").read_text())["captions"] == before + 1


def test_signal_problem_thresholds():
    t = np.arange(16000) / 16000
    speech = 0.5 * np.sin(2 * np.pi * 200 * t) * np.hanning(16000)
    assert signal_problem(speech) is None
    assert signal_problem(np.clip(20 * speech, -1, 1)) == "clipped"
    assert signal_problem(np.clip(1.0015 * speech / 0.5, -1, 1)) is None  # a few peaks touching full scale
    assert signal_problem(np.zeros(16000)) == "silent" and signal_problem(3e-5 * speech) == "silent"
    assert signal_problem(np.zeros(0)) == "silent"
