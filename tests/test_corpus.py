"""The synthetic corpus generator and the Flickr8k + FACC loader."""
import filecmp
import json
import re
import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from conftest import TINY, planned_jobs, snakemake, write_config
from vgs.corpus.flickr import CorpusError, ingest, normalise
from vgs.synth.corpus import PLURAL, build_flickr

ID = r"\d{10}_[0-9a-f]{10}"


def test_layout_is_byte_compatible_with_flickr8k_and_facc(tiny_flickr):
    txt = tiny_flickr / "Flickr8k_text"
    tokens = (txt / "Flickr8k.token.txt").read_text().splitlines()
    assert len(tokens) == 5 * TINY["images"]
    for line in tokens:  # e.g. "1000268201_693b08cb0e.jpg#0\tA child in a pink dress ... ."
        assert re.fullmatch(rf"{ID}\.jpg#[0-4]\t[A-Z][a-z ]+ \.", line), line
    per_image = Counter(line.split("#")[0] for line in tokens)
    assert set(per_image.values()) == {5}
    splits = {s: (txt / f"Flickr_8k.{s}Images.txt").read_text().split() for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in splits.items()} == TINY["splits"]
    assert sorted(sum(splits.values(), [])) == sorted(per_image)  # every image in exactly one split
    capt = (tiny_flickr / "flickr_audio" / "wav2capt.txt").read_text().splitlines()
    spk = (tiny_flickr / "flickr_audio" / "wav2spk.txt").read_text().splitlines()
    assert all(re.fullmatch(rf"({ID})_([0-4])\.wav \1\.jpg #\2", line) for line in capt)
    assert all(re.fullmatch(rf"{ID}_[0-4]\.wav \d+", line) for line in spk)
    assert len({line.split()[1] for line in spk}) == TINY["caption_voices"]
    info = sf.info(str(tiny_flickr / "flickr_audio" / "wavs" / capt[0].split()[0]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    with Image.open(tiny_flickr / "Flickr8k_Dataset" / f"{tokens[0].split('#')[0]}") as im:
        assert im.format == "JPEG" and im.size == (TINY["image_size"],) * 2


def test_captions_are_flickr_like(tiny_flickr):
    caps = [line.split("\t")[1] for line in (tiny_flickr / "Flickr8k_text" / "Flickr8k.token.txt").read_text().splitlines()]
    lengths = [len(normalise(c).split()) for c in caps]
    assert 7 <= np.mean(lengths) <= 12
    for i in range(0, len(caps), 5):
        assert len(set(caps[i:i + 5])) == 5  # five different captions per image


def test_generator_is_deterministic(tiny_flickr, tmp_path):
    preset = {**TINY, "images": 4, "splits": {"train": 2, "dev": 1, "test": 1}}
    a, b = tmp_path / "a", tmp_path / "b"
    build_flickr(a, preset, seed=0, threads=2)
    build_flickr(b, preset, seed=0, threads=1)  # same bytes whatever the worker count
    cmp = filecmp.dircmp(a, b)
    for sub in ("Flickr8k_text", "flickr_audio", "flickr_audio/wavs", "Flickr8k_Dataset", "ground_truth"):
        match, mismatch, errors = filecmp.cmpfiles(a / sub, b / sub, [p.name for p in (a / sub).iterdir() if p.is_file()], shallow=False)
        assert not mismatch and not errors and match, sub
    assert not cmp.left_only and not cmp.right_only
    build_flickr(tmp_path / "c", preset, seed=1, threads=2)
    assert (tmp_path / "c" / "Flickr8k_text" / "Flickr8k.token.txt").read_text() != (a / "Flickr8k_text" / "Flickr8k.token.txt").read_text()


def test_ground_truth_is_consistent(tiny_flickr, tmp_path):
    report = ingest(tiny_flickr, tmp_path)
    utts = pd.read_csv(tmp_path / "utterances.tsv", sep="\t").set_index("utt_id")
    times = pd.read_csv(tiny_flickr / "ground_truth" / "word_times.tsv", sep="\t")
    assert report["utterances"] == len(utts) == 5 * TINY["images"]
    for utt_id, g in times.groupby("utt_id"):
        assert " ".join(g.word) == utts.loc[utt_id, "transcript"]  # one time pair per transcript word
        s, e = g.start.to_numpy(), g.end.to_numpy()
        assert (s < e).all() and (e[:-1] <= s[1:] + 1e-6).all() and s[0] >= 0
        assert e[-1] <= utts.loc[utt_id, "duration"]
    boxes = pd.read_csv(tiny_flickr / "ground_truth" / "boxes.tsv", sep="\t")
    images = pd.read_csv(tmp_path / "images.tsv", sep="\t").set_index("image_id")
    assert set(boxes.image_id) == set(images.index)
    w = images.loc[boxes.image_id, "width"].to_numpy()
    assert ((boxes.x0 >= 0) & (boxes.y0 >= 0) & (boxes.x1 <= w) & (boxes.y1 <= w) & (boxes.x1 > boxes.x0)).all()
    # every object named in some caption of its image (the grammar names at least one object)
    caps = pd.read_csv(tmp_path / "captions.tsv", sep="\t")
    for image_id, g in caps.groupby("image_id"):
        words = set(" ".join(g.caption).lower().split())
        cats = set(boxes[boxes.image_id == image_id].category)
        assert words & (cats | {PLURAL[c] for c in cats})


def test_loader_round_trip(tiny_flickr, tmp_path):
    report = ingest(tiny_flickr, tmp_path)
    assert report["skipped"] == {} and report["images"] == TINY["images"]
    assert report["speakers"] == TINY["caption_voices"]
    utts = pd.read_csv(tmp_path / "utterances.tsv", sep="\t")
    caps = pd.read_csv(tmp_path / "captions.tsv", sep="\t")
    assert (utts.sample_rate == 16000).all() and (utts.channels == 1).all()
    assert utts.groupby("split").image_id.nunique().to_dict() == TINY["splits"]
    merged = utts.merge(caps, on=["image_id", "n"])
    assert len(merged) == len(utts)
    assert all(normalise(c) == t for c, t in zip(merged.caption, merged.transcript))


def test_word_corpus(tiny_flickr, tiny_words):
    text = dict(line.split(" ", 1) for line in (tiny_words / "text").read_text().splitlines())
    ctm = pd.read_csv(tiny_words / "words.ctm", sep=" ", names=["utt", "ch", "start", "dur", "word"])
    assert list(ctm.utt.unique()) == sorted(text) and (ctm.dur > 0).all()
    assert all(" ".join(g.word) == text[u].strip() for u, g in ctm.groupby("utt"))
    assert ctm.word.value_counts().min() >= TINY["word_tokens"]
    scp = dict(line.split() for line in (tiny_words / "wav.scp").read_text().splitlines())
    assert all((tiny_words / p).is_file() for p in scp.values())
    word_voices = {line.split()[1] for line in (tiny_words / "utt2spk").read_text().splitlines()}
    caption_voices = set(pd.read_csv(tiny_flickr / "ground_truth" / "speakers.tsv", sep="\t").speaker_id)
    assert len(word_voices) == TINY["word_voices"] and not word_voices & caption_voices


@pytest.fixture
def broken(tiny_flickr, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(tiny_flickr, root)
    return root


def _utt(root, k):
    return (root / "flickr_audio" / "wav2capt.txt").read_text().splitlines()[k].split()


def test_bad_inputs_are_counted_skips(broken, tmp_path):
    wav0, jpg0, _ = _utt(broken, 0)
    (broken / "Flickr8k_Dataset" / jpg0).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    wav7 = _utt(broken, 7)[0]
    (broken / "flickr_audio" / "wavs" / wav7).write_bytes(b"")
    tok = broken / "Flickr8k_text" / "Flickr8k.token.txt"
    lines = tok.read_text().splitlines()
    wav12 = _utt(broken, 12)[0]
    lines[12] = lines[12].replace("\t", " ")  # caption line that does not parse
    tok.write_text("\n".join(lines) + "\n")
    with open(broken / "flickr_audio" / "wav2capt.txt", "a") as f:
        f.write("9999999999_ffffffffff_0.wav 9999999999_ffffffffff.jpg #0\n")  # no such image/audio
    report = ingest(broken, tmp_path / "out")
    assert report["skipped"] == {"bad_image": 1, "image_unusable": 5, "bad_wav": 2, "bad_caption_line": 1,
                                 "audio_without_caption": 1, "caption_without_audio": 1}
    utts = pd.read_csv(tmp_path / "out" / "utterances.tsv", sep="\t")
    assert len(utts) == 5 * TINY["images"] - 5 - 1 - 1  # the rest survives
    assert not {wav0[:-4], wav7[:-4], wav12[:-4]} & set(utts.utt_id)
    skips = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in report["skips"]}
    assert "unreadable image" in skips[jpg0] and "empty file" in skips[wav7]
    assert "missing audio file" in skips["9999999999_ffffffffff_0.wav"]


def test_bad_corpus_is_a_named_error(broken, tmp_path):
    (broken / "flickr_audio" / "wav2capt.txt").unlink()
    with pytest.raises(CorpusError, match="wav2capt.txt: missing"):
        ingest(broken, tmp_path)
    with pytest.raises(CorpusError, match="not a directory"):
        ingest(tmp_path / "nowhere", tmp_path)


def test_too_many_bad_entries_fail(broken, tmp_path):
    for p in sorted((broken / "flickr_audio" / "wavs").glob("*.wav"))[:20]:
        p.write_bytes(b"RIFF")
    with pytest.raises(CorpusError, match="max_skip_fraction"):
        ingest(broken, tmp_path, max_skip_fraction=0.2)


def test_changed_parameter_reruns_only_affected_stages(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    targets = ("results/manifests/ingest_report.json", "resources/synthetic/words")
    snakemake(tmp_path, targets=targets, configfile=cfg)
    report = json.loads((tmp_path / "results/manifests/ingest_report.json").read_text())
    assert report["utterances"] == 5 * TINY["images"]
    assert planned_jobs(tmp_path, *targets, configfile=cfg) == {}
    cfg2 = write_config(tmp_path / "c2.yaml", ingest={"max_skip_fraction": 0.5})
    assert planned_jobs(tmp_path, *targets, configfile=cfg2) == {"ingest": 1}
    tiny = {**TINY, "caption_voices": 5}
    cfg3 = write_config(tmp_path / "c3.yaml", synthetic={"preset": "tiny", "presets": {"tiny": tiny}})
    assert planned_jobs(tmp_path, *targets, configfile=cfg3) == {"synthetic_corpus": 1, "synthetic_words": 1, "ingest": 1}
    words_only = {**TINY, "word_tokens": 11}  # a word-corpus key leaves the captions alone
    cfg4 = write_config(tmp_path / "c4.yaml", synthetic={"preset": "tiny", "presets": {"tiny": words_only}})
    assert planned_jobs(tmp_path, *targets, configfile=cfg4) == {"synthetic_words": 1}
