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
    # the word corpus draws its vocabulary from the ingested training captions
    assert planned_jobs(tmp_path, *targets, configfile=cfg2) == {"ingest": 1, "synthetic_words": 1}
    tiny = {**TINY, "caption_voices": 5}
    cfg3 = write_config(tmp_path / "c3.yaml", synthetic={"preset": "tiny", "presets": {"tiny": tiny}})
    assert planned_jobs(tmp_path, *targets, configfile=cfg3) == {"synthetic_corpus": 1, "synthetic_words": 1,
                                                                  "corpus_manifest": 1, "ingest": 1}
    words_only = {**TINY, "word_tokens": 11}  # a word-corpus key leaves the captions alone
    cfg4 = write_config(tmp_path / "c4.yaml", synthetic={"preset": "tiny", "presets": {"tiny": words_only}})
    assert planned_jobs(tmp_path, *targets, configfile=cfg4) == {"synthetic_words": 1}
    # noise changes the caption recordings; the word corpus is regenerated from them, identical
    cfg5 = write_config(tmp_path / "c5.yaml", synthetic={"preset": "tiny", "noise": {
        "type": "babble", "snr_db": [10, 20], "babble_talkers": 4}})
    assert planned_jobs(tmp_path, *targets, configfile=cfg5) == {"synthetic_corpus": 1, "synthetic_words": 1,
                                                                 "corpus_manifest": 1, "ingest": 1}
    snakemake(tmp_path, targets=targets, configfile=cfg3)  # regenerated in place: the manifest's digest
    assert planned_jobs(tmp_path, *targets, configfile=cfg3) == {}  # is taken after, not before


def test_text_reader_accepts_bom_and_any_line_end_and_names_a_bad_byte(tmp_path):
    from vgs.corpus.text import read_lines

    f = tmp_path / "f.txt"
    f.write_bytes(b"\xef\xbb\xbfa\tb\r\nc\rd\n\ne\n")
    assert read_lines(f) == [(1, "a\tb"), (2, "c"), (3, "d"), (4, ""), (5, "e")]
    f.write_bytes("one\ntwo caf\u00e9\nthree caf".encode() + b"\xe9 x\n")  # Latin-1 é on line 3
    with pytest.raises(CorpusError, match=r"f.txt:3:10: byte 0xe9 is not UTF-8"):
        read_lines(f)
    f.write_bytes(b"\xef\xbb\xbfab\xff\n")  # the column counts characters after the BOM
    with pytest.raises(CorpusError, match=r"f.txt:1:3: byte 0xff"):
        read_lines(f)
    f.write_text("a b\n", encoding="utf-16")
    with pytest.raises(CorpusError, match=r"f.txt: UTF-16 text"):
        read_lines(f)


def _edit(path, fn):
    path.write_text("\n".join(fn(path.read_text().splitlines())) + "\n")


def test_bom_and_crlf_in_every_text_file_change_nothing(tiny_flickr, broken, tmp_path):
    clean = ingest(tiny_flickr, tmp_path / "clean")
    for f in [*(broken / "Flickr8k_text").glob("*.txt"), *(broken / "flickr_audio").glob("*.txt")]:
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes().replace(b"\n", b"\r\n"))
    report = ingest(broken, tmp_path / "out")
    assert report["skipped"] == {} and report["utterances"] == clean["utterances"] == 5 * TINY["images"]
    for name in ("utterances.tsv", "captions.tsv"):
        got = (tmp_path / "out" / name).read_text().replace(str(broken), str(tiny_flickr))
        assert got == (tmp_path / "clean" / name).read_text()


def test_a_latin1_byte_is_an_error_naming_file_line_and_column(broken, tmp_path):
    tok = broken / "Flickr8k_text" / "Flickr8k.token.txt"
    lines = tok.read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b"\t", b"\tCaf\xe9 ", 1)
    tok.write_bytes(b"\n".join(lines))
    column = lines[6].index(b"\xe9") + 1  # the line is ASCII up to the bad byte
    with pytest.raises(CorpusError, match=rf"Flickr8k.token.txt:7:{column}: byte 0xe9 is not UTF-8"):
        ingest(broken, tmp_path)


def test_duplicate_and_conflicting_entries_are_counted_with_file_and_line(broken, tmp_path):
    txt, aud = broken / "Flickr8k_text", broken / "flickr_audio"
    capt = (aud / "wav2capt.txt").read_text().splitlines()
    wav_a, wav_b, wav_c = (capt[k].split()[0] for k in (0, 11, 22))
    img_c = capt[22].split()[1]
    key_b = capt[11].split()[1] + capt[11].split()[2]  # e.g. 123_abc.jpg#1
    other = capt[33].split()  # a different caption for wav_c
    _edit(aud / "wav2capt.txt", lambda ls: ls + [ls[0], f"{wav_c} {other[1]} {other[2]}", f"../{wav_a} {other[1]} #0"])
    tokens = (txt / "Flickr8k.token.txt").read_text().splitlines()
    dup_line = next(i for i, t in enumerate(tokens, 1) if t.startswith(key_b + "\t"))
    _edit(txt / "Flickr8k.token.txt", lambda ls: ls + [ls[0], key_b + "\tA purple giraffe is flying ."])
    _edit(aud / "wav2spk.txt", lambda ls: ls + [f"{wav_a} 999"])
    train = (txt / "Flickr_8k.trainImages.txt").read_text().split()
    _edit(txt / "Flickr_8k.trainImages.txt", lambda ls: ls + [ls[0], "not an image name", "x/../y.jpg"])
    _edit(txt / "Flickr_8k.testImages.txt", lambda ls: ls + [train[1]])
    report = ingest(broken, tmp_path, max_skip_fraction=0.5)
    assert report["skipped"] == {"duplicate_line": 3, "duplicate_wav": 2, "conflicting_caption": 2,
                                 "conflicting_speaker": 2, "bad_split_line": 2, "image_in_two_splits": 2,
                                 "image_unusable": 5, "audio_without_caption": 1, "caption_without_audio": 1,
                                 "bad_wav2capt_line": 1}  # a wav given as a path
    by_kind = {}
    for s in report["skips"]:
        by_kind.setdefault(s["kind"], []).append(s)
    n = len(capt)
    assert {(s["file"].rsplit("/", 1)[1], s["line"]) for s in by_kind["duplicate_line"]} == {
        ("wav2capt.txt", n + 1), ("Flickr8k.token.txt", len(tokens) + 1), ("Flickr_8k.trainImages.txt", len(train) + 1)}
    assert {s["line"] for s in by_kind["duplicate_wav"]} == {23, n + 2}
    assert {s["line"] for s in by_kind["conflicting_caption"]} == {dup_line, len(tokens) + 2}
    assert "none is used" in by_kind["conflicting_caption"][0]["reason"]
    assert by_kind["audio_without_caption"][0]["file"].endswith(wav_b)
    utts = pd.read_csv(tmp_path / "utterances.tsv", sep="\t", dtype=str).set_index("utt_id")
    assert wav_b[:-4] not in utts.index and wav_c[:-4] not in utts.index
    assert utts.loc[wav_a[:-4], "speaker"] == "unknown"  # two speakers given: neither is used
    assert not utts.image_id.isin([train[1][:-4]]).any()  # in train and test: neither
    assert utts.index.is_unique and len(utts) == 5 * TINY["images"] - 1 - 1 - 5


def test_a_split_without_usable_recordings_is_an_error_naming_its_list(broken, tmp_path):
    (broken / "Flickr8k_text" / "Flickr_8k.devImages.txt").write_text("\n")
    with pytest.raises(CorpusError, match=r"Flickr_8k.devImages.txt: no image of split 'dev'"):
        ingest(broken, tmp_path, max_skip_fraction=1.0)


def test_non_finite_float_audio_is_a_bad_wav_naming_the_count(broken, tmp_path):
    wavs = sorted((broken / "flickr_audio" / "wavs").glob("*.wav"))
    for p, value in ((wavs[0], np.nan), (wavs[1], np.inf)):
        x, sr = sf.read(p, dtype="float32")
        x[[10, 20]] = value
        sf.write(p, x, sr, subtype="FLOAT")
    report = ingest(broken, tmp_path)
    bad = {s["file"].rsplit("/", 1)[1]: s["reason"] for s in report["skips"] if s["kind"] == "bad_wav"}
    assert bad == {wavs[0].name: "2 non-finite samples (NaN or ±inf) in float audio",
                   wavs[1].name: "2 non-finite samples (NaN or ±inf) in float audio"}


def test_every_skip_kind_has_a_row_in_the_bad_input_table():
    from conftest import REPO

    src = (REPO / "vgs" / "corpus" / "flickr.py").read_text()
    kinds = set(re.findall(r'skips\.add\("(\w+)"', src)) | set(re.findall(r'skips,\s*"(\w+)"[,)]', src))
    doc = (REPO / "docs" / "bad-input.md").read_text()
    table = doc[doc.index("## Tables"):doc.index("## Every cache the pipeline reads back")]
    assert len(kinds) >= 21 and not [k for k in sorted(kinds) if f"`{k}`" not in table]


def test_noise_and_reverb_change_only_the_audio(tiny_flickr, tmp_path):
    """synthetic.noise / synthetic.reverb: same images, text and word times; same-length recordings at
    the asked SNR (stationary noise without reverb: noisy - clean is exactly the added noise)."""
    import soundfile as sf

    from vgs.synth.corpus import build_flickr
    from vgs.synth.degrade import speech_power

    noisy = tmp_path / "noisy"
    build_flickr(noisy, {**TINY, "noise": {"type": "stationary", "snr_db": [10, 10], "babble_talkers": 3}}, seed=0,
                 threads=2)
    for rel in ("Flickr8k_text/Flickr8k.token.txt", "ground_truth/word_times.tsv", "ground_truth/boxes.tsv",
                "flickr_audio/wav2capt.txt"):
        assert (noisy / rel).read_bytes() == (tiny_flickr / rel).read_bytes(), rel
    img = sorted((tiny_flickr / "Flickr8k_Dataset").iterdir())[0]
    assert (noisy / "Flickr8k_Dataset" / img.name).read_bytes() == img.read_bytes()
    assert not (noisy / "clean_wavs").exists()
    snrs = []
    for wav in sorted((tiny_flickr / "flickr_audio/wavs").iterdir()):
        x, _ = sf.read(wav)
        y, _ = sf.read(noisy / "flickr_audio/wavs" / wav.name)
        assert len(y) == len(x)
        snrs.append(10 * np.log10(speech_power(x) / np.mean((y - x) ** 2)))
    # exact unless a loud recording had to be scaled down to avoid clipping
    assert len(snrs) == 5 * TINY["images"] and np.median(snrs) == pytest.approx(10, abs=0.01)
    assert np.allclose(snrs, 10, atol=0.5), (min(snrs), max(snrs))
    both = tmp_path / "both"  # babble or stationary, in a reverberant room
    build_flickr(both, {**TINY, "noise": {"type": "mixed", "snr_db": [5, 20], "babble_talkers": 3},
                        "reverb": {"rt60_s": [0.3, 0.8], "drr_db": [0, 6]}}, seed=0, threads=1)
    for wav in sorted((tiny_flickr / "flickr_audio/wavs").iterdir())[:10]:
        x, y = sf.read(wav)[0], sf.read(both / "flickr_audio/wavs" / wav.name)[0]
        assert len(y) == len(x) and np.abs(y - x).max() > 0.01


def test_room_impulse_has_the_asked_decay_and_ratio():
    from vgs.synth.degrade import room_impulse

    h = room_impulse(np.random.default_rng(0), 16000, rt60=0.5, drr_db=3.0)
    assert len(h) == 8000 and h[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(3.0)
    early, late = np.sum(h[1:800] ** 2), np.sum(h[4000:4800] ** 2)  # 0.25 s apart: 30 dB of decay
    assert 10 * np.log10(early / late) == pytest.approx(30, abs=3)


def test_word_corpus_vocabulary_comes_from_the_training_captions_of_a_real_corpus(tiny_flickr, tmp_path):
    """corpus: flickr8k with word_corpus.source: synthetic: the generated word corpus shares a
    word_vocab_fraction of the (here: 'real') corpus's training-caption words, its other words occur
    in no caption, and the generated caption corpus is never built."""
    cfg = write_config(tmp_path / "c.yaml", corpus="flickr8k", flickr8k={"root": str(tiny_flickr)})
    target = "resources/synthetic/words"
    assert planned_jobs(tmp_path, target, configfile=cfg) == {"corpus_manifest": 1, "ingest": 1, "synthetic_words": 1}
    snakemake(tmp_path, targets=[target], configfile=cfg)
    assert not (tmp_path / "resources/synthetic/flickr8k").exists()
    utts = pd.read_csv(tmp_path / "results/manifests/utterances.tsv", sep="\t")
    vocab = lambda t: {w for x in t for w in x.split()}
    train, every = vocab(utts[utts.split == "train"].transcript), vocab(utts.transcript)
    words = set(pd.read_csv(tmp_path / target / "words.ctm", sep=" ", names=["u", "c", "s", "d", "w"]).w)
    assert words & every <= train  # caption words only from the training split
    assert len(words & train) == round(TINY["word_vocab_fraction"] * len(train))
    assert len(words - every) == TINY["extra_words"]
