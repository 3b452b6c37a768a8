"""ASR → text cascade: hypothesis normalisation, WER per split, the caption LM (train split only),
decoding real speech of the tiny corpus (deterministic for any worker count; silent audio an
empty, counted hypothesis) and the row it becomes."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from vgs.asr.decode import decode_corpus, normalise, wer_by_split
from vgs.asr.lm import write_caption_lm
from vgs.asr.row import cascade_row
from vgs.corpus.flickr import normalise as normalise_caption

DECODER = dict(lw=6.5, beam=1e-48, wbeam=7e-29, fwdflat=True, bestpath=True)


def test_hypotheses_are_normalised_like_transcripts():
    assert normalise("<s> THE(2) <sil> dog [NOISE] ran. ++GARBAGE++ on(3) </s>") == "the dog ran on"
    assert normalise("") == "" and normalise("<sil> [BREATH]") == ""
    assert normalise("A Dog's bone.") == normalise_caption("A Dog's bone.") == "a dog's bone"


def test_wer_per_split_by_hand():
    df = pd.DataFrame({"split": ["test", "test", "train"],
                       "reference": ["a b c d", "e f", "g h i"],
                       "transcript": ["a x c d", "", "g h i j"]})
    w = wer_by_split(df)
    # test: 1 substitution + 2 deletions over 6 words; train: 1 insertion over 3; all: 4 / 9
    assert w["test"]["wer"] == 50.0 and (w["test"]["substitutions"], w["test"]["deletions"]) == (1, 2)
    assert w["test"]["empty_hypotheses"] == 1 and w["test"]["reference_words"] == 6
    assert w["train"]["wer"] == pytest.approx(33.33) and w["train"]["insertions"] == 1
    assert w["all"]["wer"] == pytest.approx(44.44) and w["all"]["utterances"] == 3


def _manifest(root, path):
    """utterances.tsv-like manifest of the tiny corpus: its own train/dev/test lists."""
    txt = root / "Flickr8k_text"
    caps = dict(line.split("\t") for line in (txt / "Flickr8k.token.txt").read_text().splitlines())
    rows = []
    for split in ("train", "dev", "test"):
        for img in (txt / f"Flickr_8k.{split}Images.txt").read_text().split():
            for n in range(5):
                rows.append({"utt_id": f"{img[:-4]}_{n}", "split": split,
                             "wav": str(root / "flickr_audio" / "wavs" / f"{img[:-4]}_{n}.wav"),
                             "transcript": normalise_caption(caps[f"{img}#{n}"])})
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def caption_lm(tiny_flickr, tmp_path_factory):
    d = tmp_path_factory.mktemp("asr")
    u = _manifest(tiny_flickr, d / "u.tsv")
    rep = write_caption_lm(d / "u.tsv", d / "lm.arpa", d / "w.dict", d / "lm.json", {"discount_mass": 0.5})
    return d, u, rep


def test_caption_lm_knows_only_training_captions(caption_lm):
    d, u, rep = caption_lm
    train = {w for t in u[u.split == "train"].transcript for w in t.split()}
    held_out = {w for t in u[u.split != "train"].transcript for w in t.split()} - train
    arpa = (d / "lm.arpa").read_text()
    unigrams = arpa.split("\\1-grams:")[1].split("\\2-grams:")[0].split()
    assert train <= set(unigrams) and not held_out & set(unigrams)
    assert rep["sentences"] == (u.split == "train").sum() and rep["vocabulary"] == len(train)
    dict_words = {line.split()[0].split("(")[0] for line in (d / "w.dict").read_text().splitlines()}
    assert dict_words == train and rep["unpronounceable"] == []
    assert "<s>" in unigrams and "</s>" in unigrams  # sentence boundaries modelled


def test_decoding_is_deterministic_and_silence_is_an_empty_hypothesis(caption_lm, tmp_path):
    d, u, _ = caption_lm
    u = u[u.split == "test"].head(4).copy()
    x, sr = sf.read(u.wav.iloc[0], dtype="float32")
    sf.write(tmp_path / "silent.wav", np.zeros_like(x), sr, subtype="PCM_16")
    u.loc[u.index[1], "wav"] = str(tmp_path / "silent.wav")
    u.to_csv(tmp_path / "u.tsv", sep="\t", index=False)
    kw = dict(lm_path=d / "lm.arpa", dict_path=d / "w.dict")
    one = decode_corpus(tmp_path / "u.tsv", "caption", DECODER, ["test"], tmp_path / "h1.tsv", tmp_path / "r1.json", 1, **kw)
    two = decode_corpus(tmp_path / "u.tsv", "caption", DECODER, ["test"], tmp_path / "h2.tsv", tmp_path / "r2.json", 2, **kw)
    h1 = pd.read_csv(tmp_path / "h1.tsv", sep="\t", keep_default_na=False)
    assert h1.equals(pd.read_csv(tmp_path / "h2.tsv", sep="\t", keep_default_na=False))  # any worker count
    assert list(h1.utt_id) == list(u.utt_id) and list(h1.columns) == ["utt_id", "split", "transcript"]
    assert h1.transcript.iloc[1] == "" and one["empty"] == [{"utt_id": u.utt_id.iloc[1], "reason": "silent_audio: not decoded"}]
    assert one["empty_reasons"] == {"silent_audio": 1}
    # a 30-caption LM on espeak voices: weak, but a quarter of the spoken words are right (14 of
    # 36 when written); the silent caption's words are all deletions
    w = one["wer"]["test"]
    silent_words = len(u.transcript.iloc[1].split())
    assert w["deletions"] >= silent_words
    assert w["reference_words"] - w["substitutions"] - w["deletions"] >= 0.25 * (w["reference_words"] - silent_words)
    assert one["wer"] == two["wer"] and one["x_real_time_per_process"] > 1


def test_cascade_row_carries_wer_and_the_published_reference(tmp_path):
    metrics = {"system": "asr_general", "stage": "fragment", "label": "asr_general", "paper": None,
               "runs": [{"seed": 0, "ranks": {"search": [1, 2], "annotation": [1]}}],
               "sizes": {"images": 1, "captions": 2}, "captions_per_image": [2],
               "columns": {"Grounding acc. (random)": "50.0 (10.0)"}}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    (tmp_path / "w.json").write_text(json.dumps({"wer": {"test": {"wer": 42.5}, "all": {"wer": 42.5}}}))
    row = cascade_row(tmp_path / "m.json", tmp_path / "w.json", "general", True, "asr_general_trained", tmp_path / "r.json")
    assert row["label"] == "ASR → text (general LM, trained on ASR text)" and row["stage"] == "asr"
    assert row["columns"] == {"Grounding acc. (random)": "50.0 (10.0)", "ASR WER % (test)": 42.5}
    assert row["paper"] == {"seed": "milan2021_cascade", "row": "Speech→ASR→Text"}
    assert json.loads((tmp_path / "r.json").read_text())["runs"] == metrics["runs"]
    from vgs.recall.table import PAPERS

    assert PAPERS["milan2021_cascade"]["rows"]["Speech→ASR→Text"]["search"] == {"R@1": 46.9, "R@10": 85.5}
