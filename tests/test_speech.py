"""Speech stage: alignment (pocketsphinx, MFA TextGrid parsing, oracle), fbank, word windows."""
import json
import re
import shutil
import subprocess

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from vgs import frames
from vgs.speech import align, features, kaldi_dir, mfa_backend, windows
from vgs.speech.audio import BadAudioError, load_audio
from vgs.speech.textgrid import read_textgrid

FB = dict(sample_rate=16000, num_mel_bins=40, frame_length_ms=25.0, frame_shift_ms=10.0,
          dither=1.0, normalise="spectrogram")
PS = dict(beam=1e-80, pbeam=1e-80, wbeam=1e-60, retry_beams=[1e-150], phone_pass=True, g2p="espeak")
GAP = 0.4  # s of silence between words in the test utterance


def espeak(text, path, voice="en-us"):
    """Synthesise `text` with the espeak-ng CLI, converted to 16 kHz mono 16-bit by sox."""
    raw = path.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two utterances with known word times: words synthesised one by one by espeak-ng, trimmed
    to their first/last sample above 1% of full scale, joined with GAP s of silence."""
    d = tmp_path_factory.mktemp("speech")
    utts, truth = [], []
    for k, text in enumerate(["yellow dog eats banana", "the blorptastic zebra"]):
        parts, t = [np.zeros(int(0.2 * 16000), np.float32)], 0.2
        for i, w in enumerate(text.split()):
            x, _ = load_audio(espeak(w, d / f"w{k}_{i}.wav"))
            on = np.flatnonzero(np.abs(x) > 0.01)
            x = x[on[0]:on[-1] + 1]
            truth.append((f"u{k}", i, w, t, t + len(x) / 16000))
            parts += [x, np.zeros(int(GAP * 16000), np.float32)]
            t += len(x) / 16000 + GAP
        wav = d / f"u{k}.wav"
        sf.write(wav, np.concatenate(parts), 16000, subtype="PCM_16")
        utts.append((f"u{k}", str(wav), text, t, "spk"))
    (d / "empty.wav").write_bytes(b"")
    full = (d / "u0.wav").read_bytes()
    (d / "cut.wav").write_bytes(full[:len(full) // 3])  # header promises more data than present
    utts += [("empty", str(d / "empty.wav"), "the dog", 0.0, "spk"),
             ("cut", str(d / "cut.wav"), "yellow dog eats banana", 0.0, "spk")]
    pd.DataFrame(utts, columns=["utt_id", "wav", "transcript", "duration", "speaker"]).to_csv(
        d / "utterances.tsv", sep="\t", index=False)
    pd.DataFrame(truth, columns=align.SEGMENT_COLUMNS).to_csv(d / "truth.tsv", sep="\t", index=False)
    return d


def test_bad_audio_named_errors(corpus):
    with pytest.raises(BadAudioError, match="empty.wav: empty file"):
        load_audio(corpus / "empty.wav")
    with pytest.raises(BadAudioError, match="cut.wav: truncated"):
        load_audio(corpus / "cut.wav")
    with pytest.raises(BadAudioError, match="missing audio file: no such file"):
        load_audio(corpus / "missing.wav")


def test_pocketsphinx_alignment_against_known_times(corpus):
    out = corpus / "ps"
    rep = align.align_corpus(corpus / "utterances.tsv", "pocketsphinx", PS, out / "tg",
                             out / "seg.tsv", out / "report.json", threads=1,
                             truth_tsv=corpus / "truth.tsv")
    assert rep["aligned"] == 2 and rep["failed"] == 2
    assert {f["utt_id"]: f["reason"].split(":")[0] for f in rep["failures"]} == \
        {"empty": "bad_audio", "cut": "bad_audio"}
    assert rep["lexicon"]["oov_from_g2p"] == ["blorptastic"]  # in neither dictionary
    seg = pd.read_csv(out / "seg.tsv", sep="\t")
    assert seg.groupby("utt_id").word.apply(" ".join).to_dict() == \
        {"u0": "yellow dog eats banana", "u1": "the blorptastic zebra"}
    assert (seg.end > seg.start).all()
    err = rep["boundary_error_vs_ground_truth"]
    assert err["words_compared"] == 7 and err["mean_ms"] < 40, err
    # onsets are sharp; word-final releases ("dog", "eats") fade slowly below the aligner's
    # notice, so ends get a wider margin — still far below the 400 ms gaps between words
    m = seg.merge(pd.read_csv(corpus / "truth.tsv", sep="\t"), on=["utt_id", "index"])
    assert (abs(m.start_x - m.start_y) < 0.03).all() and (abs(m.end_x - m.end_y) < 0.12).all()
    words, phones = read_textgrid(out / "tg" / "u0.TextGrid")
    assert [w for w, _, _ in words] == ["yellow", "dog", "eats", "banana"]
    dog = [(s, e) for w, s, e in words if w == "dog"][0]
    assert [p for p, s, e in phones if dog[0] <= s < dog[1]] == ["D", "AO", "G"]
    assert json.loads((out / "report.json").read_text())["x_real_time"] > 0


def test_transcript_mismatch_is_a_failure(corpus, tmp_path):
    u = pd.read_csv(corpus / "utterances.tsv", sep="\t").iloc[:1].copy()
    u["transcript"] = "yellow dog eats banana and a red hat near the zebra"
    u.to_csv(tmp_path / "u.tsv", sep="\t", index=False)
    rep = align.align_corpus(tmp_path / "u.tsv", "pocketsphinx", {**PS, "retry_beams": []},
                             tmp_path / "tg", tmp_path / "seg.tsv", tmp_path / "r.json")
    assert rep["aligned"] == 0
    assert rep["failures"][0]["reason"].split(":")[0] in {"no_alignment", "word_mismatch"}
    assert len(pd.read_csv(tmp_path / "seg.tsv", sep="\t")) == 0


MFA_TG = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "{spk}words"
        xmin = 0
        xmax = 1.5
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.31
            text = ""
        intervals [2]:
            xmin = 0.31
            xmax = 0.62
            text = "the"
        intervals [3]:
            xmin = 0.62
            xmax = 1.2
            text = "zebra"
        intervals [4]:
            xmin = 1.2
            xmax = 1.5
            text = ""
    item [2]:
        class = "IntervalTier"
        name = "{spk}phones"
        xmin = 0
        xmax = 1.5
        intervals: size = 7
        intervals [1]:
            xmin = 0
            xmax = 0.31
            text = "sil"
        intervals [2]:
            xmin = 0.31
            xmax = 0.4
            text = "DH"
        intervals [3]:
            xmin = 0.4
            xmax = 0.62
            text = "AH0"
        intervals [4]:
            xmin = 0.62
            xmax = 0.75
            text = "Z"
        intervals [5]:
            xmin = 0.75
            xmax = 0.9
            text = "IY1"
        intervals [6]:
            xmin = 0.9
            xmax = 1.2
            text = "B R AH0"
        intervals [7]:
            xmin = 1.2
            xmax = 1.5
            text = ""
"""


@pytest.mark.parametrize("spk", ["", "spk1 - "])  # MFA 3 names tiers "<speaker> - words" sometimes
def test_mfa_textgrid_parsing(tmp_path, spk):
    (tmp_path / "out" / "spk1").mkdir(parents=True)
    (tmp_path / "out" / "spk1" / "a.TextGrid").write_text(MFA_TG.format(spk=spk))
    words, phones = read_textgrid(tmp_path / "out" / "spk1" / "a.TextGrid")
    assert words == [("the", 0.31, 0.62), ("zebra", 0.62, 1.2)]
    assert [p for p, _, _ in phones] == ["DH", "AH0", "Z", "IY1", "B R AH0"]
    utts = [{"utt_id": "a", "speaker": "spk1", "transcript": "the zebra", "duration": 1.5},
            {"utt_id": "b", "speaker": "spk1", "transcript": "a dog", "duration": 1.0}]
    res = {r["utt_id"]: r for r in mfa_backend.parse_output(utts, tmp_path / "out")}
    assert res["a"]["ok"] and res["a"]["words"][1] == ("zebra", 0.62, 1.2)
    assert not res["b"]["ok"] and res["b"]["reason"].startswith("mfa_no_output")


def test_mfa_missing_command_explains_install():
    with pytest.raises(RuntimeError, match="conda-forge montreal-forced-aligner"):
        mfa_backend.mfa_command({"command": "mfa-not-installed-here"})


def test_oracle_writes_truth(corpus, tmp_path):
    rep = align.align_corpus(corpus / "utterances.tsv", "oracle", {}, tmp_path / "tg",
                             tmp_path / "seg.tsv", tmp_path / "r.json",
                             truth_tsv=corpus / "truth.tsv")
    seg = pd.read_csv(tmp_path / "seg.tsv", sep="\t")
    truth = pd.read_csv(corpus / "truth.tsv", sep="\t")
    assert rep["aligned"] == 2 and {f["utt_id"] for f in rep["failures"]} == {"empty", "cut"}
    assert np.allclose(seg.start, truth.start, atol=1e-4) and (seg.word == truth.word).all()
    assert read_textgrid(tmp_path / "tg" / "u1.TextGrid")[0][1][0] == "blorptastic"


def test_fbank_shape_normalisation_and_kaldi_copy(corpus, tmp_path):
    x, _ = load_audio(corpus / "u0.wav")
    raw = features.fbank(x, {**FB, "normalise": "none"}, "u0")
    assert raw.shape == (round(len(x) / 160), 40)  # snip_edges=False: one frame per 10 ms
    # dither keeps digital silence (this file's gaps) near Kaldi's noise floor, not log(eps)
    assert raw.min() > -5 and features.fbank(x, {**FB, "dither": 0.0, "normalise": "none"}).min() < -15
    f = features.fbank(x, FB, "u0")
    assert abs(f.mean()) < 1e-4 and abs(f.std() - 1) < 1e-3
    assert np.allclose(f, (raw - raw.mean()) / raw.std(), atol=1e-4)
    pb = features.fbank(x, {**FB, "normalise": "per_bin"}, "u0")
    assert np.abs(pb.mean(0)).max() < 1e-4 and np.abs(pb.std(0) - 1).max() < 1e-3

    # a 22.05 kHz stereo copy: resampled + downmixed (counted), near-identical features
    sf.write(tmp_path / "st.wav", np.stack([x, x], 1), 16000)
    subprocess.run(["sox", str(tmp_path / "st.wav"), "-r", "22050", str(tmp_path / "st22.wav")],
                   check=True)
    items = [("u0", str(corpus / "u0.wav")), ("st", str(tmp_path / "st22.wav")),
             ("empty", str(corpus / "empty.wav")), ("cut", str(corpus / "cut.wav"))]
    rep = features.extract_features(items, FB, tmp_path / "fb.h5", tmp_path / "fb.json",
                                    threads=2, ark=str(tmp_path / "fb.ark"),
                                    scp=str(tmp_path / "fb.scp"))
    assert (rep["stored"], rep["skipped"], rep["resampled"], rep["downmixed"]) == (2, 2, 1, 1)
    assert {s["utt_id"] for s in rep["skips"]} == {"empty", "cut"}
    feats = features.load_feats(tmp_path / "fb.h5")
    assert np.allclose(feats["u0"], f)
    n = min(len(feats["st"]), len(f))
    speech = raw[:n].mean(1) > np.median(raw.mean(1))  # compare where there is speech
    assert abs(len(feats["st"]) - len(f)) <= 1
    assert np.abs(feats["st"][:n] - f[:n])[speech].mean() < 0.1
    import kaldi_io

    ark = dict(kaldi_io.read_mat_scp(str(tmp_path / "fb.scp")))
    assert set(ark) == {"u0", "st"} and np.array_equal(ark["u0"], feats["u0"])


def test_fbank_resumes_partial_file(corpus, tmp_path):
    out = tmp_path / "fb.h5"
    features.extract_features([("u0", str(corpus / "u0.wav"))], FB, out, tmp_path / "r.json")
    (tmp_path / "fb.h5").rename(tmp_path / "fb.h5.partial")  # as if killed before the rename
    with h5py.File(tmp_path / "fb.h5.partial", "a") as h5:
        h5["feats"].create_dataset("u1", data=np.zeros((3, 40)))  # died mid-write: no "done"
    rep = features.extract_features([("u0", str(corpus / "u0.wav")), ("u1", str(corpus / "u1.wav"))],
                                    FB, out, tmp_path / "r.json")
    assert rep["reused_from_partial_run"] == 1 and rep["stored"] == 2
    assert features.load_feats(out)["u1"].shape[0] > 100


def test_fbank_resume_keeps_only_utterances_still_listed_with_the_same_wav(corpus, tmp_path):
    """Issue 15, item 8: killed, then the corpus changed: an utterance dropped, a wav replaced."""
    wav = tmp_path / "a.wav"
    shutil.copy(corpus / "u0.wav", wav)
    items = [("a", str(wav)), ("gone", str(corpus / "u1.wav")), ("u1", str(corpus / "u1.wav"))]
    out = tmp_path / "fb.h5"
    features.extract_features(items, FB, out, tmp_path / "r.json")
    out.rename(f"{out}.partial")  # as if killed before the rename
    x, sr = sf.read(corpus / "u1.wav")
    sf.write(wav, x, sr, subtype="PCM_16")  # a.wav now holds other speech
    rep = features.extract_features([items[0], items[2]], FB, out, tmp_path / "r.json")
    assert rep["reused_from_partial_run"] == 1 and rep["stored"] == 2  # only u1 was reused
    feats = features.load_feats(out)
    assert set(feats) == {"a", "u1"} and feats["a"].shape == feats["u1"].shape


def test_a_damaged_partial_file_starts_afresh(corpus, tmp_path):
    partial = tmp_path / "fb.h5.partial"
    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # killed while HDF5 wrote its header
    rep = features.extract_features([("u0", str(corpus / "u0.wav"))], FB, tmp_path / "fb.h5", tmp_path / "r.json")
    assert rep["reused_from_partial_run"] == 0 and rep["stored"] == 1


def test_non_finite_audio_is_a_named_skip(corpus, tmp_path):
    """A NaN sample (or samples so large the features overflow): a counted skip naming the wav,
    never NaN features (which used to surface as an error in a later stage, naming its file)."""
    x, sr = sf.read(corpus / "u0.wav", dtype="float32")
    sf.write(tmp_path / "nan.wav", np.where(np.arange(len(x)) == 100, np.nan, x), sr, subtype="FLOAT")
    sf.write(tmp_path / "huge.wav", 1e20 * x, sr, subtype="FLOAT")
    with pytest.raises(BadAudioError, match=r"nan.wav: 1 non-finite samples"):
        load_audio(tmp_path / "nan.wav")
    items = [(k, str(tmp_path / f"{k}.wav")) for k in ("nan", "huge")] + [("u0", str(corpus / "u0.wav"))]
    rep = features.extract_features(items, FB, tmp_path / "fb.h5", tmp_path / "r.json")
    assert rep["stored"] == 1 and [(s["utt_id"], s["path"]) for s in rep["skips"]] == items[:2]
    assert rep["skips"][0]["problem"] == "1 non-finite samples (NaN or ±inf) in float audio"
    assert re.fullmatch(r"log-mel features not finite \(peak \|sample\| [1-9.]+e\+(19|20)\)", rep["skips"][1]["problem"])


def test_kaldi_readers_accept_bom_and_crlf_and_name_bad_lines(tmp_path):
    from vgs.corpus.text import CorpusError

    scp = tmp_path / "wav.scp"
    scp.write_bytes(b"\xef\xbb\xbfu1 a.wav\r\nu2 sph2pipe -f wav b.wv1 |\r\n")
    assert kaldi_dir.read_table(scp) == {"u1": "a.wav", "u2": "sph2pipe -f wav b.wv1 |"}
    scp.write_text("u1 a.wav\nu2 b.wav\nu1 c.wav\n")
    with pytest.raises(CorpusError, match=r"wav.scp:3: key 'u1' already on line 1"):
        kaldi_dir.read_table(scp)
    scp.write_bytes(b"u1 caf\xe9.wav\n")
    with pytest.raises(CorpusError, match=r"wav.scp:1:7: byte 0xe9 is not UTF-8"):
        kaldi_dir.read_table(scp)
    ctm = tmp_path / "w.ctm"
    ctm.write_text("u1 1 0.10 0.30 dog\nu1 1 0.40 x0.2 cat\n")
    with pytest.raises(CorpusError, match=r"w.ctm:2: a CTM line is 'utt channel start duration word'"):
        kaldi_dir.read_ctm(ctm)
    ctm.write_text("u1 1 0.10 -0.30 dog\n")
    with pytest.raises(CorpusError, match=r"w.ctm:1: .*duration >= 0"):
        kaldi_dir.read_ctm(ctm)


@pytest.mark.parametrize("length,left,right,cut_left", [
    (37, 31, 32, 0), (38, 31, 31, 0), (100, 0, 0, 0), (1, 49, 50, 0), (151, 0, 0, 25), (150, 0, 0, 25)])
def test_window_pads_and_truncates_equally_on_both_sides(length, left, right, cut_left):
    feats = np.arange(1, 301, dtype=np.float32)[:, None].repeat(2, 1)  # frame i holds i + 1
    start = 40
    w = frames.cut_windows(feats, np.array([start]), np.array([length]), 100)[0, :, 0]
    assert (w[:left] == 0).all() and (w[100 - right:] == 0).all()
    body = w[left:100 - right]
    first = start + cut_left  # first word frame kept
    assert np.array_equal(body, feats[first:first + len(body), 0])
    assert len(body) == min(length, 100)
    assert length <= 100 or (length - 100 - cut_left) - cut_left in (0, 1)  # equal cut, odd → end


def test_build_windows_file_layout(tmp_path):
    T = 250
    with h5py.File(tmp_path / "fb.h5", "w") as h5:
        h5.attrs.update(num_mel_bins=3, frame_shift_ms=10.0)
        for k, u in enumerate(["a", "b"]):
            h5.create_dataset(f"feats/{u}", data=np.arange(T * 3, dtype=np.float32).reshape(T, 3) + k)
    seg = pd.DataFrame([("a", 0, "dog", 0.10, 0.50), ("a", 1, "zebra", 0.50, 1.80),
                        ("b", 0, "cat", 1.00, 1.20), ("gone", 0, "x", 0.0, 0.2)],
                       columns=align.SEGMENT_COLUMNS)
    seg.to_csv(tmp_path / "seg.tsv", sep="\t", index=False)
    rep = windows.caption_windows(tmp_path / "fb.h5", tmp_path / "seg.tsv", tmp_path / "w.h5",
                                  tmp_path / "w.json",
                                  {"frames": 100, "dtype": "float32", "compression": "gzip"}, "test")
    assert rep["windows"] == 3 and rep["skipped_words_no_features"] == 1
    assert rep["longer_than_window"] == 1 and abs(rep["fraction_longer_than_window"] - 1 / 3) < 1e-4
    with h5py.File(tmp_path / "w.h5", "r") as h5:
        w = h5["windows"][()]
        assert w.shape == (3, 100, 3) and w.dtype == np.float32
        assert [s.decode() for s in h5["words"][()]] == ["dog", "zebra", "cat"]
        assert list(h5["index"][()]) == [0, 1, 0] and list(h5["frames"][()]) == [40, 130, 20]
        # dog: frames 10..49 centred → 30 zeros, 40 frames, 30 zeros
        assert (w[0, :30] == 0).all() and w[0, 30, 0] == 30 and w[0, 69, 0] == 49 * 3
        # zebra: frames 50..179, 130 long → drop 15 at each end → frames 65..164
        assert w[1, 0, 0] == 65 * 3 and w[1, 99, 0] == 164 * 3
        assert h5.attrs["aligner"] == "test" and h5.attrs["n_longer_than_window"] == 1


def test_wordcorpus_windows_with_speakers(corpus, tmp_path):
    from vgs.speech.wordcorpus import wordcorpus_features, wordcorpus_windows

    kd = tmp_path / "words"
    (kd / "wav").mkdir(parents=True)
    (kd / "wav" / "t1.wav").write_bytes((corpus / "u0.wav").read_bytes())
    (kd / "wav.scp").write_text("t1 wav/t1.wav\n")  # relative to the data dir, as ours are
    (kd / "utt2spk").write_text("t1 spkA\n")
    (kd / "words.ctm").write_text("t1 1 0.2 0.5 yellow\nt1 1 1.2 0.3 dog\n")
    wordcorpus_features(str(kd / "wav.scp"), tmp_path / "fb.h5", tmp_path / "fb.json", FB)
    rep = wordcorpus_windows(tmp_path / "fb.h5", kd / "words.ctm", "ctm", kd / "utt2spk",
                             tmp_path / "w.h5", tmp_path / "w.json",
                             {"frames": 100, "dtype": "float16", "compression": "lzf"})
    assert rep["windows"] == 2
    with h5py.File(tmp_path / "w.h5", "r") as h5:
        assert h5["windows"].dtype == np.float16 and h5["windows"].shape == (2, 100, 40)
        assert [s.decode() for s in h5["speakers"][()]] == ["spkA", "spkA"]
        assert np.allclose(h5["end"][()], [0.7, 1.5])


def test_word_corpus_aligned_by_the_caption_aligner(tiny_words, tmp_path):
    """word_corpus.times: aligner — the word corpus through the caption aligner's backend and report
    (boundary error against its CTM), windows at those times; the oracle aligner gives the CTM's windows."""
    from vgs.speech.kaldi_dir import read_ctm
    from vgs.speech.wordcorpus import wordcorpus_align, wordcorpus_features, wordcorpus_windows

    wcfg = {"frames": 100, "dtype": "float32", "compression": "none"}
    wordcorpus_features(str(tiny_words / "wav.scp"), tmp_path / "fb.h5", tmp_path / "fb.json", FB, threads=2)
    ctm = read_ctm(tiny_words / "words.ctm")
    text = dict(line.split(" ", 1) for line in (tiny_words / "text").read_text().splitlines())
    h5 = {}
    for aligner in ("pocketsphinx", "oracle"):
        out = tmp_path / aligner
        rep = wordcorpus_align(tiny_words, tiny_words / "words.ctm", aligner, PS, out / "tg",
                               out / "seg.tsv", out / "report.json", threads=2)
        assert rep["utterances"] == len(text) and rep["aligned"] == len(text) - rep["failed"]
        seg = windows.read_segments(out / "seg.tsv")
        assert rep["aligned"] >= 0.9 * len(text) and len(seg) == rep["words_aligned"]
        for utt, words in seg.groupby("utt_id").word:  # aligned words are the transcript's
            assert " ".join(words) == text[utt]
        wrep = wordcorpus_windows(tmp_path / "fb.h5", out / "seg.tsv", "aligner", tiny_words / "utt2spk",
                                  out / "w.h5", out / "w.json", wcfg)
        assert wrep["windows"] == len(seg) and wrep["times"] == "aligner"
        h5[aligner] = out / "w.h5"
        if aligner == "pocketsphinx":
            err = rep["boundary_error_vs_ground_truth"]
            assert err["words_compared"] == len(seg) and err["median_ms"] < 30, err
            assert (tmp_path / aligner / "tg" / f"{seg.utt_id[0]}.TextGrid").exists()
    wordcorpus_windows(tmp_path / "fb.h5", tiny_words / "words.ctm", "ctm", tiny_words / "utt2spk",
                       tmp_path / "ctm.h5", tmp_path / "ctm.json", wcfg)
    with h5py.File(h5["oracle"], "r") as a, h5py.File(tmp_path / "ctm.h5", "r") as b, \
            h5py.File(h5["pocketsphinx"], "r") as c:
        assert len(b["windows"]) == len(ctm)
        for k in ("windows", "words", "speakers", "start", "end"):
            assert np.array_equal(a[k][()], b[k][()]), k
        assert not np.array_equal(c["start"][()], b["start"][()])  # really cut elsewhere


def test_word_corpus_without_transcript_is_a_named_error(corpus, tmp_path):
    from vgs.speech.wordcorpus import wordcorpus_align

    kd = tmp_path / "words"
    kd.mkdir()
    (kd / "wav.scp").write_text(f"t1 {corpus / 'u0.wav'}\nt2 {corpus / 'u1.wav'}\n")
    (kd / "text").write_text("t1 yellow dog eats banana\n")
    (kd / "utt2spk").write_text("t1 a\nt2 a\n")
    (kd / "words.ctm").write_text("t1 1 0.2 0.5 yellow\n")
    with pytest.raises(ValueError, match=r"words/text: no transcript for 1 utterances of wav.scp, e.g. \['t2'\]"):
        wordcorpus_align(kd, kd / "words.ctm", "pocketsphinx", PS, tmp_path / "tg", tmp_path / "s.tsv",
                         tmp_path / "r.json")


@pytest.mark.slow
def test_parameter_change_reruns_only_its_stage(tmp_path):
    """End to end on the tiny corpus, then `snakemake -n` after each kind of parameter change."""
    from conftest import SHARDS, planned_jobs, snakemake, write_config

    targets = ["results/speech/pocketsphinx/caption_windows.h5",
               "results/speech/oracle/caption_windows.h5", "results/wordcorpus/windows.h5"]
    base = write_config(tmp_path / "base.yaml")
    snakemake(tmp_path, targets=targets, configfile=base)
    rep = json.loads((tmp_path / "results/speech/pocketsphinx/alignment_report.json").read_text())
    assert rep["aligned_rate"] >= 0.9 and rep["boundary_error_vs_ground_truth"]["median_ms"] < 30
    assert planned_jobs(tmp_path, *targets, configfile=base) == {}
    cases = {"windows": ({"windows": {"dtype": "float16"}},
                         {"speech_windows": 2, "wordcorpus_windows": 1}),
             "fbank": ({"fbank": {"normalise": "per_bin"}},
                       {"speech_fbank": SHARDS["speech_fbank"], "speech_fbank_merge": 1, "wordcorpus_fbank": 1,
                        "speech_windows": 2, "wordcorpus_windows": 1}),
             "align": ({"pocketsphinx": {"beam": 1e-90}},
                       {"speech_align": SHARDS["speech_align"], "speech_align_merge": 1, "speech_windows": 1,
                        "wordcorpus_align": 1, "wordcorpus_windows": 1}),
             "threads": ({"fbank": {"threads": 1}, "align_threads": 1}, {})}
    for name, (change, expected) in cases.items():
        cfg = write_config(tmp_path / f"{name}.yaml", speech=change)
        assert planned_jobs(tmp_path, *targets, configfile=cfg) == expected, name


def test_pocketsphinx_alignment_does_not_depend_on_scheduling(tiny_flickr, tmp_path):
    """Same segments with 1 or 2 worker processes (a reused decoder carried state between
    utterances, so results depended on which worker saw what first)."""
    from vgs.corpus.flickr import ingest

    ingest(tiny_flickr, tmp_path / "m")
    seg = {}
    for threads in (1, 2):
        align.align_corpus(tmp_path / "m" / "utterances.tsv", "pocketsphinx", PS, tmp_path / f"tg{threads}",
                           tmp_path / f"seg{threads}.tsv", tmp_path / f"rep{threads}.json", threads=threads)
        seg[threads] = pd.read_csv(tmp_path / f"seg{threads}.tsv", sep="\t").sort_values(["utt_id", "index"])
    assert len(seg[1]) > 400
    assert seg[1].reset_index(drop=True).equals(seg[2].reset_index(drop=True))
