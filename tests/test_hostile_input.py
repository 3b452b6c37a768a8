"""Bad input by class, on small files and no Snakemake (docs/bad-input.md): damaged caches, operating
system errors, reports that survive a resume, the caption text policy, implausible recordings,
images checked at ingest, true reasons, and same-size corpus edits.  Each class has cases nobody
named; each case asserts its outcome (an error naming the file, a counted skip with the measured
value, or a documented conversion) and that the other items of the corpus still come through."""
import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from conftest import REPO, TINY
from vgs.cache import meta_path, read_json, read_tsv, write_tsv
from vgs.corpus.flickr import CorpusError, ingest
from vgs.corpus.text import TextError, normalise
from vgs.runtime import CacheError

N_UTTS = 5 * TINY["images"]


# --- helpers ---------------------------------------------------------------------------------------

@pytest.fixture
def world(tmp_path_factory):
    """A directory every user may enter (pytest's own tmp dirs are root-only), removed after."""
    d = Path(tempfile.mkdtemp(prefix="vgs-hostile-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def corpus(tiny_flickr, world):
    root = world / "corpus"
    shutil.copytree(tiny_flickr, root)
    for d, dirs, _ in os.walk(root):
        os.chmod(d, 0o755)
    return root


@contextlib.contextmanager
def unprivileged():
    """The block runs as a user who needs read permission (root reads files with mode 000): as
    root, with effective uid and gid `nobody` (for every thread); otherwise as ourselves.  Modules
    the block needs are imported before (Python's own library may be readable by root only)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def lines(path):
    return Path(path).read_text().splitlines()


def write_lines(path, rows):
    Path(path).write_text("\n".join(rows) + "\n")


def wavs_of(root):
    return [line.split()[0] for line in lines(root / "flickr_audio" / "wav2capt.txt")]


def skips_by_file(report):
    out = {}
    for s in report["skips"]:
        out.setdefault(Path(s["file"]).name, []).append((s["kind"], s["reason"]))
    return out


def run_ingest(root, out, **kw):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o777)
    return ingest(root, out, threads=2, max_skip_fraction=kw.pop("max_skip_fraction", 0.5), **kw)


def kept(out):
    return set(read_tsv(Path(out) / "utterances.tsv", ["utt_id"]).utt_id)


# --- 1. damaged caches -----------------------------------------------------------------------------

def _tables(tiny_flickr, tiny_manifests, tmp_path):
    """One of every TSV cache the pipeline reads back, written by its writer (or by write_tsv as
    its writer does), each with the stage functions that read it."""
    from vgs.asr.lm import read_manifest
    from vgs.caption.data import read_utterances as caption_utts
    from vgs.coscos.data import TOKEN_COLUMNS, read_table
    from vgs.fragment.data import read_utterances as fragment_utts
    from vgs.fragment.textvec import read_transcripts
    from vgs.patterns.grounding import read_items
    from vgs.patterns.vad import read_words
    from vgs.speech.align import align_utterances, read_truth, read_utterances
    from vgs.speech.windows import read_segments
    from vgs.synth.corpus import caption_vocabulary
    from vgs.vision.stage import read_manifest as image_manifest

    d = tmp_path / "caches"
    d.mkdir()
    for name in ("utterances.tsv", "images.tsv", "captions.tsv"):
        for f in (d / name, meta_path(d / name)):
            shutil.copy(Path(tiny_manifests) / f.name, f)
    truth = tiny_flickr / "ground_truth"
    for name in ("word_times.tsv", "boxes.tsv"):
        for f in (d / name, meta_path(d / name)):
            shutil.copy(truth / f.name, f)
    u = read_utterances(d / "utterances.tsv")
    align_utterances(u, "oracle", {}, d / "tg", d / "word_segments.tsv", d / "align.json",
                     truth=read_truth(d / "word_times.tsv"))
    write_tsv(u[["utt_id", "split", "transcript"]], d / "hypotheses.tsv")  # as vgs.asr.decode
    seg = read_segments(d / "word_segments.tsv").merge(u[["utt_id", "image_id", "split"]], on="utt_id")
    write_tsv(seg[TOKEN_COLUMNS], d / "tokens.tsv")  # as vgs.coscos.data.select_tokens
    box_cols = ["image_id", "category", "x0", "y0", "x1", "y1"]
    return {
        "utterances.tsv": [read_utterances, fragment_utts, lambda p: caption_utts(p, "train"), read_manifest,
                           caption_vocabulary, lambda p: read_items(p, d / "images.tsv", "test")],
        "images.tsv": [image_manifest, lambda p: read_items(d / "utterances.tsv", p, "test")],
        "captions.tsv": [lambda p: read_tsv(p, ["image_id", "n", "caption"])],  # written for users
        "word_segments.tsv": [read_segments, read_words, lambda p: read_table(p, ["utt_id", "index", "word"])],
        "hypotheses.tsv": [read_transcripts],
        "tokens.tsv": [lambda p: read_table(p, TOKEN_COLUMNS)],
        "word_times.tsv": [read_truth],
        "boxes.tsv": [lambda p: read_tsv(p, box_cols)],  # fragment, vision and patterns read these
    }, d


def _cut_mid(data):
    return data[:len(data) // 2 + 3] if data[len(data) // 2 + 2:len(data) // 2 + 3] != b"\n" else data[:len(data) // 2]


def _cut_at_line_end(data):
    half = data[:len(data) // 2]
    return half[:half.rindex(b"\n") + 1]


def _flip_char(data):  # one letter of a word changed: same size and rows
    i = data.rindex(b"\n", 0, len(data) - 1) + 2  # in the last row
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


DAMAGES = {  # name: (damage of the bytes, what the error says)
    "cut mid-line": (_cut_mid, "its last line is cut"),
    "cut at a line end": (_cut_at_line_end, r"holds \d+ rows; its writer wrote \d+"),
    "a row appended twice": (lambda d: d + d[d.rindex(b"\n", 0, len(d) - 1) + 1:], r"holds \d+ rows; its writer wrote"),
    "a column renamed": (lambda d: d.replace(b"\t", b"\tx_", 1), "has columns"),
    "one byte changed": (_flip_char, "differ from the"),
    "empty file": (lambda d: b"", "empty file"),
    "saved with CRLF line ends": (lambda d: d.replace(b"\n", b"\r\n"), "differ from the"),
}


def test_every_damaged_tsv_cache_is_a_cache_error_naming_it_for_every_reader(tiny_flickr, tiny_manifests, tmp_path):
    tables, d = _tables(tiny_flickr, tiny_manifests, tmp_path)
    for name, readers in tables.items():
        path = d / name
        good = path.read_bytes()
        for reader in readers:
            assert len(reader(path)) > 0, (name, reader)  # the intact file reads
        for damage, (fn, said) in DAMAGES.items():
            path.write_bytes(fn(good))
            for reader in readers:
                with pytest.raises(CacheError) as e:
                    reader(path)
                msg = str(e.value)
                assert msg.startswith(f"{path}: cannot read this TSV cache ("), (name, damage)
                assert re.search(said, msg) and msg.endswith(f"Rebuild it with: snakemake --forcerun {path}"), (name, damage, msg)
        path.write_bytes(good)


def test_a_tsv_without_its_record_is_checked_for_form(tmp_path, caplog):
    """A table written by hand (no .meta.json): read with a warning; a wrong value, a missing
    column or a repeated key is still a CacheError naming line and column."""
    p = tmp_path / "word_segments.tsv"
    p.write_text("utt_id\tindex\tword\tstart\tend\nu1\t0\tNA\t0.1\t0.5\nu1\t1\tdog\t0.5\t0.9\n")
    seg = read_tsv(p, ["utt_id", "index", "word", "start", "end"], unique=["utt_id", "index"])
    assert list(seg.word) == ["NA", "dog"] and seg["index"].dtype == np.int64 and seg.start.dtype == np.float64
    assert "no record of its writer" in caplog.text
    for text, said in (("u1\t0\tdog\t0.1\tabc\n", r"line 2: column 'end' is 'abc', not a finite number"),
                       ("u1\tx\tdog\t0.1\t0.5\n", r"line 2: column 'index' is 'x', not an integer"),
                       ("u1\t1.5\tdog\t0.1\t0.5\n", r"column 'index' is '1.5', not an integer"),
                       ("u1\t0\tdog\tnan\t0.5\n", r"column 'start' is 'nan', not a finite number"),
                       ("u1\t0\tdog\t0.1\t0.5\nu1\t0\tcat\t0.5\t0.9\n", r"line 3: utt_id=u1, index=0 repeats an earlier row"),
                       ("u1\t0\tdog\t0.1\t0.5\textra\n", "record 2 has 6 fields, the header 5"),
                       ("u1\t0\tdog\t0.1\n", "record 2 has 4 fields, the header 5"),
                       ("u1\t0\tdog\t0.1\t0.5\nu1\t1\t\"dog\t0.5\t0.9\n", "does not parse as TSV")):
        p.write_text("utt_id\tindex\tword\tstart\tend\n" + text)
        with pytest.raises(CacheError, match=said):
            read_tsv(p, ["utt_id", "index", "word", "start", "end"], unique=["utt_id", "index"])
    p.write_text("utt_id\tword\nu1\tdog\n")
    with pytest.raises(CacheError, match=r"lacks columns \['index', 'start', 'end'\]"):
        read_tsv(p, ["utt_id", "index", "word", "start", "end"])
    write_tsv(pd.DataFrame({"utt_id": ["u1"], "word": ["dog"]}), p)
    meta_path(p).write_text("{not json")
    with pytest.raises(CacheError, match=r"its record word_segments.tsv.meta.json is unreadable"):
        read_tsv(p)
    p.unlink()
    with pytest.raises(CacheError, match="FileNotFoundError"):
        read_tsv(p)


def test_every_damaged_json_cache_is_a_cache_error_naming_it(tmp_path):
    """The JSON caches stages read back (shard reports, metrics, WER, histories) through their
    real readers; each damage names the file and its --forcerun command."""
    from vgs.asr.row import cascade_row
    from vgs.caption.figures import training_figure
    from vgs.recall.table import assemble
    from vgs.speech.features import merge_features
    from vgs.wordcnn.report import table2

    good = {"system": "s", "label": "l", "runs": [], "sizes": {}, "captions_per_image": 5, "wer": {"test": {"wer": 1}}}
    readers = {
        "recall metrics.json": lambda p: assemble([p], {"ks": [1]}),
        "cascade metrics.json": lambda p: cascade_row(p, p, "caption", False, "asr_caption", tmp_path / "row.json"),
        "wordcnn metrics.json": lambda p: table2([p], None, None, tmp_path / "t2.json", tmp_path / "t2.md"),
        "caption train.json": lambda p: training_figure([p], tmp_path / "f.png"),
        "fbank shard report": lambda p: merge_features([], [p], tmp_path / "m.h5", tmp_path / "m.json"),
    }
    p = tmp_path / "x.json"
    for name, reader in readers.items():
        for damage, text, said in (("cut", json.dumps(good)[:40], "JSONDecodeError"), ("empty", "", "JSONDecodeError"),
                                   ("a list", "[1, 2]", "holds a list, not an object"),
                                   ("binary", "\x89PNG\r\n\x1a\n", "JSONDecodeError"),
                                   ("not UTF-8", None, "UnicodeDecodeError"),
                                   ("keys missing", json.dumps({"other": 1}), "lacks keys")):
            p.write_bytes(b"{\"a\": \"caf\xe9\"}" if text is None else text.encode())
            with pytest.raises(CacheError, match=said) as e:
                reader(p)
            assert str(e.value).startswith(f"{p}: cannot read this JSON cache") and \
                str(e.value).endswith(f"--forcerun {p}"), (name, damage)
    assert read_json(_write(tmp_path / "ok.json", good), ["runs"])["system"] == "s"


def _write(p, obj):
    p.write_text(json.dumps(obj))
    return p


def test_no_stage_reads_a_cache_past_the_validated_readers():
    """Every read of a TSV, JSON, HDF5 or torch file one stage wrote goes through vgs.cache or
    vgs.runtime.open_h5 / load_torch.  Excepted: benchmark tools reading Snakemake's files, and the
    corpus manifest's hash cache (standard library only; a damaged one is rebuilt)."""
    allowed = {"vgs/cache.py", "vgs/runtime.py", "vgs/scaling.py", "vgs/vision/photobench.py", "vgs/corpus/manifest.py"}
    raw = re.compile(r"pd\.read_(csv|table)\(|json\.load\(|json\.loads\((Path|open)|h5py\.File\([^)]*\"r\"|torch\.load\(")
    found = [f"{f.relative_to(REPO)}:{n}: {line.strip()}" for f in sorted((REPO / "vgs").rglob("*.py"))
             if str(f.relative_to(REPO)) not in allowed
             for n, line in enumerate(f.read_text().splitlines(), 1) if raw.search(line)]
    assert not found, found


# --- 2. operating-system errors: one item a counted skip with the OS's words, a needed file an error

def test_unreadable_items_are_counted_skips_with_the_os_message(corpus, world):
    """Permission denied (as a user root's override does not cover), a directory, a broken or
    looping symbolic link, a named pipe (which must not hang the check) -- for wavs and images."""
    wavs, images = corpus / "flickr_audio" / "wavs", corpus / "Flickr8k_Dataset"
    w = wavs_of(corpus)
    train = lines(corpus / "Flickr8k_text" / "Flickr_8k.trainImages.txt")
    (wavs / w[1]).chmod(0)
    (wavs / w[7]).unlink()
    (wavs / w[7]).mkdir()
    (wavs / w[13]).unlink()
    (wavs / w[13]).symlink_to(wavs / "gone.wav")
    (wavs / w[19]).unlink()
    os.mkfifo(wavs / w[19])
    (wavs / w[26]).unlink()
    (wavs / w[26]).symlink_to(wavs / w[26])  # a link to itself
    (images / train[0]).chmod(0)
    (images / train[1]).unlink()
    (images / train[1]).mkdir()
    (images / train[2]).unlink()
    (images / train[2]).symlink_to("../elsewhere.jpg")
    with unprivileged():
        report = run_ingest(corpus, world / "out")
    s = skips_by_file(report)
    assert s[w[1]] == [("bad_wav", "cannot read the audio file: PermissionError: Permission denied")]
    assert s[w[7]] == [("bad_wav", "is a directory, not a file")]
    assert s[w[13]] == [("bad_wav", f"broken symbolic link (to '{wavs / 'gone.wav'}', which does not exist)")]
    assert s[w[19]] == [("bad_wav", "not a regular file (a named pipe)")]
    assert s[w[26]] == [("bad_wav", "cannot reach the audio file: OSError: Too many levels of symbolic links")]
    assert s[train[0]] == [("bad_image", "cannot read the image file: PermissionError: Permission denied")]
    assert s[train[1]] == [("bad_image", "is a directory, not a file")]
    assert s[train[2]][0][1].startswith("broken symbolic link (to '../elsewhere.jpg'")
    bad_images = {t[:-4] for t in train[:3]}
    lost = {x[:-4] for x in (w[1], w[7], w[13], w[19], w[26])}
    good = {x[:-4] for x in w if x[:-4] not in lost and x.rsplit("_", 1)[0] not in bad_images}
    assert kept(world / "out") == good and len(good) >= N_UTTS - 15 - 5  # every other recording
    assert report["images"] == TINY["images"] - 3


@pytest.mark.parametrize("name,damage,said", [
    ("Flickr8k_text/Flickr8k.token.txt", "chmod", "cannot read the corpus file: PermissionError: Permission denied"),
    ("Flickr8k_text/Flickr_8k.devImages.txt", "directory", "is a directory, not a file"),
    ("flickr_audio/wav2capt.txt", "dangling", "broken symbolic link"),
    ("flickr_audio/wav2spk.txt", "fifo", "not a regular file (a named pipe)"),
    ("flickr_audio/wavs", "chmod", "cannot list this directory (PermissionError: Permission denied)"),
    ("Flickr8k_Dataset", "missing", "cannot list this directory (FileNotFoundError"),
])
def test_a_file_the_corpus_needs_is_an_error_naming_it(corpus, world, name, damage, said):
    p = corpus / name
    if damage == "chmod":
        p.chmod(0)
    elif damage == "missing":
        shutil.rmtree(p)
    else:
        p.unlink()
        if damage == "directory":
            p.mkdir()
        elif damage == "dangling":
            p.symlink_to(corpus / "nowhere.txt")
        else:
            os.mkfifo(p)
    with unprivileged(), pytest.raises(CorpusError) as e:
        run_ingest(corpus, world / "out")
    assert str(e.value).startswith(f"{p}: ") and said in str(e.value), str(e.value)


def test_word_corpus_audio_that_cannot_be_read_is_a_counted_skip(tiny_words, world):
    import torchaudio.compliance.kaldi  # noqa: F401  (before unprivileged(): see there)

    from vgs.speech.wordcorpus import wordcorpus_features

    words = world / "words"
    shutil.copytree(tiny_words, words)
    for d, _, _ in os.walk(words):
        os.chmod(d, 0o777)
    scp = [line.split() for line in lines(words / "wav.scp")]
    (words / scp[0][1]).chmod(0)
    (words / scp[1][1]).unlink()
    (words / scp[1][1]).mkdir()
    (words / scp[2][1]).unlink()
    os.mkfifo(words / scp[2][1])
    cfg = dict(sample_rate=16000, num_mel_bins=40, frame_length_ms=25, frame_shift_ms=10, dither=1.0,
               normalise="spectrogram")
    with unprivileged():
        rep = wordcorpus_features(str(words / "wav.scp"), words / "fb.h5", words / "r.json", cfg)
    assert [(s["utt_id"], s["problem"]) for s in rep["skips"]] == [
        (scp[0][0], "cannot read the audio file: PermissionError: Permission denied"),
        (scp[1][0], "is a directory, not a file"), (scp[2][0], "not a regular file (a named pipe)")]
    assert rep["stored"] == len(scp) - 3


# --- 3. reports derived from what is stored --------------------------------------------------------

RUN_KEYS = {"wall_seconds", "x_real_time", "reused_from_partial_run"}  # this run's, not the result's
FB = dict(sample_rate=16000, num_mel_bins=40, frame_length_ms=25, frame_shift_ms=10, dither=1.0,
          normalise="spectrogram")


@pytest.fixture
def varied(tiny_flickr, tmp_path):
    """16 recordings: resampled, stereo, clipped, silent, one empty (a skip) among plain ones."""
    import torch
    import torchaudio.functional as AF

    items = []
    for k, p in enumerate(sorted((tiny_flickr / "flickr_audio" / "wavs").glob("*.wav"))[:16]):
        x, sr = sf.read(p, dtype="float32")
        out = tmp_path / p.name
        if k % 5 == 1:
            x, sr = AF.resample(torch.from_numpy(x), 16000, 22050).numpy(), 22050
        elif k % 5 == 2:
            x = np.stack([x, 0.5 * x], 1)
        elif k % 5 == 3:
            x = np.clip(20 * x, -1, 1)
        elif k % 5 == 4:
            x = np.zeros_like(x)
        sf.write(out, x, sr, subtype="PCM_16")
        items.append((p.stem, str(out)))
    Path(items[10][1]).write_bytes(b"")
    return items


def _report(path):
    return {k: v for k, v in json.loads(Path(path).read_text()).items() if k not in RUN_KEYS | {"h5_bytes"}}


def _killed(items, cfg, out, report, after):
    """extract_features killed after `after` utterances (flushed, before the rename), then resumed."""
    from vgs.speech import features

    features.extract_features(items[:after], cfg, out, report)
    Path(out).rename(f"{out}.partial")
    return features.extract_features(items, cfg, out, report)


def test_fbank_report_is_the_same_after_a_kill_and_resume_and_a_shard_merge(varied, tmp_path):
    """Counts of conversions, signal problems and skips come from the stored file: an uninterrupted
    run, runs killed at three points and resumed, and a 2- and a 3-shard merge report alike."""
    from vgs.speech import features

    one = features.extract_features(varied, FB, tmp_path / "one.h5", tmp_path / "one.json")
    assert (one["resampled"], one["downmixed"], one["clipped"], one["silent"], one["skipped"]) == (3, 3, 3, 3, 1)
    want = _report(tmp_path / "one.json")
    for after in (1, 7, 15):
        rep = _killed(varied, FB, tmp_path / f"k{after}.h5", tmp_path / f"k{after}.json", after)
        assert rep["reused_from_partial_run"] == after - (after > 10)  # the empty wav was never stored
        assert _report(tmp_path / f"k{after}.json") == want, after
    for k in (2, 3):
        cuts = np.linspace(0, len(varied), k + 1).astype(int)
        parts = [(tmp_path / f"s{k}_{i}.h5", tmp_path / f"s{k}_{i}.json") for i in range(k)]
        for (h5, js), a, b in zip(parts, cuts[:-1], cuts[1:]):
            features.extract_features(varied[a:b], FB, h5, js)
        features.merge_features([h for h, _ in parts], [j for _, j in parts], tmp_path / f"m{k}.h5", tmp_path / f"m{k}.json")
        assert _report(tmp_path / f"m{k}.json") == want, k


def test_fbank_resume_after_the_corpus_changed_reports_the_changed_corpus(varied, tmp_path):
    """Killed, then a stereo wav replaced by a mono one and a silent one by speech: the resumed
    report equals an uninterrupted run on the changed corpus (stale rows recomputed)."""
    from vgs.speech import features

    features.extract_features(varied, FB, tmp_path / "r.h5", tmp_path / "r.json")
    (tmp_path / "r.h5").rename(tmp_path / "r.h5.partial")
    shutil.copy(varied[0][1], varied[2][1])  # was stereo
    shutil.copy(varied[5][1], varied[4][1])  # was silent
    features.extract_features(varied, FB, tmp_path / "r.h5", tmp_path / "r.json")
    features.extract_features(varied, FB, tmp_path / "u.h5", tmp_path / "u.json")
    got = _report(tmp_path / "r.json")
    assert got == _report(tmp_path / "u.json") and (got["downmixed"], got["silent"]) == (2, 2)


def test_a_partial_file_from_before_the_signal_record_is_recomputed(varied, tmp_path):
    """A partial file whose datasets lack the per-utterance record (an older version) must not
    leave its utterances out of the counts: they are recomputed."""
    import h5py

    from vgs.speech import features

    features.extract_features(varied[:8], FB, tmp_path / "o.h5", tmp_path / "o.json")
    with h5py.File(tmp_path / "o.h5", "a") as h5:
        for k in h5["feats"]:
            for a in ("signal", "channels", "resampled"):
                del h5["feats"][k].attrs[a]
    (tmp_path / "o.h5").rename(tmp_path / "o.h5.partial")
    rep = features.extract_features(varied, FB, tmp_path / "o.h5", tmp_path / "o.json")
    assert rep["reused_from_partial_run"] == 0
    features.extract_features(varied, FB, tmp_path / "u.h5", tmp_path / "u.json")
    assert _report(tmp_path / "o.json") == _report(tmp_path / "u.json")


# --- 4. one caption text policy ----------------------------------------------------------------------

TEXT_CASES = [  # caption -> transcript (vgs.corpus.text.normalise)
    ("A dog\U0001F436 runs", "a dog runs"),                       # an emoji glued to a word
    ("big\u200bdog", "big dog"),                                  # zero-width space: a boundary
    ("\u201ca dog\u2019s ball\u201d", "a dog's ball"),            # typographic quotes
    ("\u00abun chien\u00bb", "un chien"),                         # guillemets
    ("The dog\u2014a puppy\u2013runs", "the dog a puppy runs"),  # dashes: boundaries
    ("well\u2010known x\u00adray", "well-known xray"),           # hyphen mapped, soft hyphen removed
    ("\uff24\uff4f\uff47 \ufb01sh", "dog fish"),                 # full-width letters, a ligature (NFKC)
    ("cafe\u0301 caf\u00e9", "café café"),                        # combining accent composed (NFKC)
    ("\U0001F469\u200d\U0001F680 astronaut \U0001F44D\U0001F3FD", "astronaut"),  # ZWJ sequence, skin tone
    ("the \U0001F1EB\U0001F1F7 flag", "the flag"),              # regional indicators
    ("a 1\ufe0f\u20e3 sign", "a 1 sign"),                        # keycap: variation selector, enclosing mark
    ("\ufeffA\u200e dog\u202e", "a dog"),                         # BOM mid-text, bidi marks
    ("a\u00a0dog\u3000runs", "a dog runs"),                      # no-break and ideographic spaces
    ("\u2018quoted\u2019 horse 's ski 's", "quoted horse 's ski 's"),  # Flickr8k's split clitics kept
    ("wait\u2026 what", "wait what"),                            # ellipsis
    ("[noise] a <s> dog ++garbage++", "a dog"),                  # non-speech markers
    ("\u0441\u043e\u0431\u0430\u043a\u0430 \u0643\u0644\u0628", "собака كلب"),  # other scripts stay
    ("\u00a9 2010 \u2122", "2010 tm"),                           # © a boundary; ™ -> TM (NFKC)
]


@pytest.mark.parametrize("text,want", TEXT_CASES)
def test_caption_text_policy(text, want):
    assert normalise(text) == want
    assert normalise(want) == want  # idempotent: a transcript is its own normal form


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x1c"])
def test_a_control_character_is_a_text_error_naming_it(char):
    with pytest.raises(TextError, match=rf"control character U\+{ord(char):04X} at column 3"):
        normalise("a " + char + "dog")


def test_the_same_policy_for_asr_hypotheses_and_word_corpus_text(tmp_path):
    from vgs.asr.decode import normalise as hypothesis
    from vgs.speech.kaldi_dir import read_ctm

    assert hypothesis("<s> A DOG(2) [NOISE] RUNS’ ++GARBAGE++ </s>") == "a dog runs'"
    ctm = tmp_path / "w.ctm"
    ctm.write_text("u1 1 0.10 0.20 Dog,\nu1 1 0.30 0.10 <unk>\nu1 1 0.40 0.20 big\u200bdog\nu1 1 0.60 0.2 \u201cruns\u201d\n")
    seg = read_ctm(ctm)
    assert list(seg.word) == ["dog", "runs"] and list(seg["index"]) == [0, 1]
    assert seg.attrs["dropped_entries"] == 2  # <unk>; one time span for two words
    ctm.write_text("u1 1 0.10 0.20 do\x00g\n")
    with pytest.raises(CorpusError, match=r"w.ctm:1: control character U\+0000 at column 3"):
        read_ctm(ctm)


def test_flickr8k_sample_vocabulary_before_and_after(tmp_path):
    """The shared real captions (Flickr8k sample): clean ASCII text keeps its 785 words and every
    transcript; the same captions typed with typographic quotes, glued emoji, zero-width spaces,
    dashes and stray BOMs give the clean vocabulary (the ASCII-only rule gave 952 words)."""
    tokens = Path("/work/shared/data/flickr8k-sample/Flickr8k_text/Flickr8k.token.txt")
    if not tokens.exists():
        pytest.skip("no shared Flickr8k sample on this machine")
    caps = [line.split("\t", 1)[1] for line in tokens.read_text().splitlines()]
    vocab = lambda cs: {w for c in cs for w in normalise(c).split()}
    clean = vocab(caps)
    assert len(clean) == 785 and "'s" in clean
    typed = [_typed(c, i) for i, c in enumerate(caps)]
    assert sum(a != b for a, b in zip(typed, caps)) > 300
    assert [normalise(t) for t in typed] == [normalise(c) for c in caps]


def _typed(c, i):
    """A caption as a phone keyboard, a word processor or a web form might give it."""
    w = c.replace("'", "\u2019").split(" ")
    if i % 4 == 0 and len(w) > 3:
        w[2] += "\U0001F436"
    if i % 5 == 1:
        w[0], w[-1] = "\u201c" + w[0], w[-1] + "\u201d"
    if i % 7 == 2 and len(w) > 2:
        w[0:2] = [w[0] + "\u200b" + w[1]]
    if i % 6 == 3 and len(w) > 4:
        w[3] = "\u2014" + w[3]
    if i % 9 == 4:
        w[0] = "\ufeff" + w[0]
    return " ".join(w)


def test_ingest_applies_the_policy_and_counts_control_characters(corpus, world):
    tok = corpus / "Flickr8k_text" / "Flickr8k.token.txt"
    t = lines(tok)
    keys = [x.split("\t")[0] for x in t]
    t[0] = keys[0] + "\tA dog\U0001F436 runs on the \u201cgrass\u201d ."
    t[1] = keys[1] + "\tA big\u200bdog\u2019s ball ."
    t[2] = keys[2] + "\tA dog \x00 runs ."
    t[3] = keys[3] + "\t\u2026 \U0001F436 !"
    write_lines(tok, t)
    report = run_ingest(corpus, world / "out")
    u = read_tsv(world / "out" / "utterances.tsv", ["utt_id", "image_id", "n", "transcript"]).set_index(["image_id", "n"])
    key = lambda k: (k.split(".jpg#")[0], int(k.split("#")[1]))
    assert u.loc[key(keys[0]), "transcript"] == "a dog runs on the grass"
    assert u.loc[key(keys[1]), "transcript"] == "a big dog's ball"
    s = {x["kind"]: x for x in report["skips"]}
    assert s["control_character"]["line"] == 3 and s["control_character"]["reason"] == \
        f"{keys[2]}: control character U+0000 at column 7"
    assert s["empty_caption"]["line"] == 4
    assert report["skipped"] == {"control_character": 1, "empty_caption": 1, "audio_without_caption": 2}
    assert len(u) == N_UTTS - 2


# --- 5. implausible recordings, measured at ingest -----------------------------------------------------

def _speech(root, k):
    x, sr = sf.read(root / "flickr_audio" / "wavs" / wavs_of(root)[k], dtype="float32")
    return x, sr


def test_implausible_recordings_are_skips_with_the_measured_value(corpus, world):
    """Besides the named ones (a caption said 20 times, a 100 Hz header, DC only): 4 kHz and
    192 kHz headers, 60 s of noise for one caption, digital silence, and speech 15x too fast; while
    8 kHz telephone speech, a DC offset under speech and 20 s of leading silence are fine."""
    import torch
    import torchaudio.functional as AF

    wavs, w = corpus / "flickr_audio" / "wavs", wavs_of(corpus)
    x, sr = _speech(corpus, 0)
    rng = np.random.default_rng(0)
    write = lambda k, y, rate, subtype="PCM_16": sf.write(wavs / w[k], y, rate, subtype=subtype)
    write(1, np.tile(_speech(corpus, 1)[0], 20), 16000)                                  # said 20 times
    write(2, _speech(corpus, 2)[0], 100)                                                 # header says 100 Hz
    write(3, np.full(32000, 0.25, np.float32), 16000)                                    # DC only
    write(4, AF.resample(torch.from_numpy(_speech(corpus, 4)[0]), 16000, 4000).numpy(), 4000)
    write(5, _speech(corpus, 5)[0], 192000)                                              # 16 kHz data, 192 kHz header
    write(6, 0.1 * rng.standard_normal(16000 * 60).astype(np.float32), 16000)             # a minute of noise
    write(7, np.zeros(16000 * 3, np.float32), 16000, "FLOAT")                            # digital silence
    write(8, _speech(corpus, 8)[0][::15], 16000)                                         # 15x too fast
    write(9, AF.resample(torch.from_numpy(_speech(corpus, 9)[0]), 16000, 8000).numpy(), 8000)   # telephone
    write(10, np.clip(_speech(corpus, 10)[0] + 0.3, -1, 1), 16000)                        # DC offset + speech
    write(11, np.concatenate([np.zeros(16000 * 20, np.float32), _speech(corpus, 11)[0]]), 16000)
    report = run_ingest(corpus, world / "out")
    s = skips_by_file(report)
    reason = lambda k: s[w[k]][0][1] if s.get(w[k], [("",)])[0][0] == "implausible_audio" else s.get(w[k])
    assert re.fullmatch(r"speaking rate 0\.\d\d words/s outside 0.5-12: \d+ words in \d\d\.\d\d s of voiced audio "
                        r"\(\d+\.\d\d s recorded\)", reason(1)), reason(1)
    assert reason(2) == "sample rate 100 Hz outside 8000-96000 Hz"
    assert reason(3) == "constant signal: every sample 0.2500 (DC only, no sound)"
    assert reason(4) == "sample rate 4000 Hz outside 8000-96000 Hz"
    assert reason(5) == "sample rate 192000 Hz outside 8000-96000 Hz"
    assert re.match(r"speaking rate 0\.1\d words/s outside .* in 59\.9\d s of voiced audio \(60.00 s recorded\)", reason(6)), reason(6)
    assert reason(7) == "silent: peak -200 dBFS (below -80)"
    assert re.match(r"speaking rate \d\d\.\d\d words/s outside 0.5-12", reason(8)), reason(8)
    assert {w[k][:-4] for k in (0, 9, 10, 11)} <= kept(world / "out")
    assert report["skipped"] == {"implausible_audio": 8, "caption_without_audio": 8}
    assert len(kept(world / "out")) == N_UTTS - 8
    # flag: kept and listed; ignore: kept, not even read
    flagged = run_ingest(corpus, world / "flag", plausibility={"action": "flag"})
    assert len(flagged["flagged"]) == 8 and flagged["skipped"] == {} and len(kept(world / "flag")) == N_UTTS
    assert {Path(f["file"]).name: f["reason"] for f in flagged["flagged"]}[w[2]] == reason(2)
    off = run_ingest(corpus, world / "off", plausibility={"action": "ignore"})
    assert off["flagged"] == [] and off["skipped"] == {}
    # the range is configurable: a tighter one names its own bounds
    tight = run_ingest(corpus, world / "tight", plausibility={"words_per_second": [0.5, 4.5]}, max_skip_fraction=1)
    assert tight["skipped"]["implausible_audio"] > 10 and \
        any("outside 0.5-4.5" in r for _, r in sum(skips_by_file(tight).values(), []))


def test_speaking_rate_vad_on_real_speech():
    """The energy VAD's voiced seconds on real read speech (VoxForge, 25 sentences) give rates
    well inside the default range [0.5, 12] words/s."""
    from vgs.speech.audio import voiced_seconds

    root = Path("/work/shared/data/voxforge-en")
    if not root.exists():
        pytest.skip("no shared VoxForge sample on this machine")
    rates = []
    for spk in sorted(root.iterdir()):
        prompts = dict(line.split(None, 1) for line in (spk / "etc" / "PROMPTS").read_text().splitlines() if line.strip())
        prompts = {k.rsplit("/", 1)[-1]: v for k, v in prompts.items()}
        for wav in sorted((spk / "wav").glob("*.wav")):
            x, sr = sf.read(wav, dtype="float32")
            rates.append(len(normalise(prompts[wav.stem]).split()) / voiced_seconds(x, sr))
    assert len(rates) == 25 and 1.5 < min(rates) and max(rates) < 5


# --- 6. images checked where they are first read, as displayed ----------------------------------------

def _png_with_size(path, width, height):
    """A tiny PNG file whose header claims width x height (a decompression bomb's disguise)."""
    import struct
    import zlib

    Image.new("L", (1, 1)).save(path, "PNG")
    data = bytearray(Path(path).read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    Path(path).write_bytes(bytes(data))


def test_images_are_checked_at_ingest_as_displayed(corpus, world):
    """1x1 (named) and 31x300 px are skips naming their size, a header claiming 20000x20000 px a
    skip naming the decompression bomb; EXIF orientations 6, 3 and 8 are read upright and their
    displayed size recorded; 16-bit, transparent, animated and mis-oriented files converted."""
    from vgs.images import load_image

    d = corpus / "Flickr8k_Dataset"
    names = [x for s in ("train", "dev", "test") for x in lines(corpus / "Flickr8k_text" / f"Flickr_8k.{s}Images.txt")]
    upright = np.asarray(Image.open(d / names[3]).convert("RGB").resize((120, 80)))
    Image.new("RGB", (1, 1), (200, 0, 0)).save(d / names[0], "JPEG")
    Image.new("RGB", (31, 300), (0, 200, 0)).save(d / names[1], "JPEG")
    _png_with_size(d / names[2], 20000, 20000)
    turn = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180, 8: Image.Transpose.ROTATE_270}
    for name, o in zip(names[3:6], (6, 3, 8)):  # stored turned; the tag says how to turn it back
        exif = Image.Exif()
        exif[0x0112] = o
        Image.fromarray(upright).transpose(turn[o]).save(d / name, "PNG", exif=exif)
    ramp = (np.arange(80 * 120).reshape(80, 120) * 6).astype(np.uint16)  # 16-bit, up to 57594
    Image.fromarray(ramp).save(d / names[6], "PNG")
    rgba = np.zeros((80, 120, 4), np.uint8)
    rgba[:40] = (255, 0, 0, 255)  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba).save(d / names[7], "PNG")
    frames = [Image.new("RGB", (120, 80), c) for c in ((0, 0, 255), (255, 255, 0))]
    frames[0].save(d / names[8], "GIF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 9  # not an orientation: ignored
    Image.fromarray(upright).save(d / names[9], "PNG", exif=exif)
    report = run_ingest(corpus, world / "out", max_skip_fraction=0.9)
    s = skips_by_file(report)
    assert s[names[0]] == [("bad_image", "1x1 px, smaller than 32 px on a side")]
    assert s[names[1]] == [("bad_image", "31x300 px, smaller than 32 px on a side")]
    assert s[names[2]][0][0] == "bad_image" and "DecompressionBombError" in s[names[2]][0][1]
    im = read_tsv(world / "out" / "images.tsv", ["image_id", "path", "width", "height"]).set_index("image_id")
    assert len(im) == TINY["images"] - 3 and not set(n[:-4] for n in names[:3]) & set(im.index), [s["reason"][:150] for s in report["skips"] if s["kind"] == "bad_image"]
    for name in names[3:6]:
        assert (im.loc[name[:-4], "width"], im.loc[name[:-4], "height"]) == (120, 80), name
        assert np.array_equal(load_image(d / name), upright), name
    grey = load_image(d / names[6])
    assert grey.shape == (80, 120, 3) and grey.max() == round(57594 / 257) and (grey[..., 0] == grey[..., 2]).all()
    over_white = load_image(d / names[7])
    assert (over_white[:40] == (255, 0, 0)).all() and (over_white[40:] == 255).all()
    assert (load_image(d / names[8]) == (0, 0, 255)).all()  # the first frame
    assert np.array_equal(load_image(d / names[9]), upright)
    # every image ingest accepted is one the later stages can read, at the size ingest recorded
    for image_id, r in im.iterrows():
        assert load_image(r.path).shape[:2] == (r.height, r.width), image_id
    assert len(kept(world / "out")) == N_UTTS - 15


def test_min_image_side_must_fit_the_box_grid(tmp_path):
    from conftest import planned_jobs, write_config

    cfg = write_config(tmp_path / "c.yaml", ingest={"min_image_side": 8})
    with pytest.raises(AssertionError, match=r"ingest.min_image_side = 8 is below patterns.boxes.grid = 10"):
        planned_jobs(tmp_path, "results/manifests/images.tsv", configfile=cfg)


# --- 7. true reasons: one per item and problem; a consequence names its cause --------------------------

def test_every_skip_is_true_and_a_consequence_names_its_cause(corpus, world):
    txt, aud = corpus / "Flickr8k_text", corpus / "flickr_audio"
    capt, tok, train = lines(aud / "wav2capt.txt"), lines(txt / "Flickr8k.token.txt"), lines(txt / "Flickr_8k.trainImages.txt")
    w = [c.split()[0] for c in capt]
    key = lambda k: capt[k].split()[1] + capt[k].split()[2]  # 123_abc.jpg#2
    tline = {t.split("\t")[0]: i for i, t in enumerate(tok)}
    # accepted (conversions): leading whitespace on a wav2capt line (named), a leading tab on a token
    # line, trailing spaces in wav2spk and a split list
    capt[2] = " " + capt[2]
    tok[tline[key(3)]] = "\t" + tok[tline[key(3)]]
    spk = [s + "   " for s in lines(aud / "wav2spk.txt")]
    train[0] = train[0] + "  "
    # damaged: a wav2capt line with a stray field, a caption line without its tab, a punctuation-only
    # caption (named), a control character, a wav listed for two captions, a split-list line that
    # is a path, a broken link and a directory where wavs should be (named)
    capt[6] = capt[6] + " extra"
    tok[tline[key(8)]] = tok[tline[key(8)]].replace("\t", " ", 1)
    tok[tline[key(9)]] = key(9) + "\t... !"
    tok[tline[key(11)]] = key(11) + "\tA dog\x07 barks ."
    capt.append(f"{w[12]} {capt[13].split()[1]} {capt[13].split()[2]}")  # w12 also for 13's caption
    dev = lines(txt / "Flickr_8k.devImages.txt")
    used = {c.split()[1] for c in capt[:20]}
    i_dev = next(i for i, x in enumerate(dev) if x not in used)
    dev_image = dev[i_dev]
    dev[i_dev] = "images/" + dev_image
    (aud / "wavs" / w[16]).unlink()
    (aud / "wavs" / w[16]).symlink_to("/nowhere/x.wav")
    (aud / "wavs" / w[17]).unlink()
    (aud / "wavs" / w[17]).mkdir()
    for f, rows in ((aud / "wav2capt.txt", capt), (txt / "Flickr8k.token.txt", tok), (aud / "wav2spk.txt", spk),
                    (txt / "Flickr_8k.trainImages.txt", train), (txt / "Flickr_8k.devImages.txt", dev)):
        write_lines(f, rows)
    report = run_ingest(corpus, world / "out", max_skip_fraction=0.9)
    s = skips_by_file(report)
    u = kept(world / "out")
    assert {w[2][:-4], w[3][:-4]} <= u  # the whitespace was accepted: no skip names them
    assert w[2] not in s and w[3] not in s and "wav2spk.txt" not in s
    assert "unknown" not in set(read_tsv(world / "out" / "utterances.tsv", ["speaker"]).speaker)
    n6 = 7
    assert s[w[6]] == [("wav_entry_skipped", f"its line {n6} of wav2capt.txt was skipped (bad_wav2capt_line: "
                                              f"line does not parse: {capt[6][:80]!r})")]
    reasons = {r.split(" has no usable recording: ")[0]: r.split(" has no usable recording: ")[1] for k, r in s["Flickr8k.token.txt"]
               if k == "caption_without_audio"}
    assert reasons[key(6)].startswith(f"its line {n6} of wav2capt.txt was skipped (bad_wav2capt_line")
    assert s[w[8]] == [("audio_without_caption", f"its caption {key(8)}: line {tline[key(8)] + 1} of Flickr8k.token.txt "
                                                 f"was skipped (bad_caption_line: line does not parse: "
                                                 f"{tok[tline[key(8)]][:80]!r})")]
    assert s[w[9]][0][0] == "audio_without_caption" and "(empty_caption: " in s[w[9]][0][1]
    assert s[w[11]][0][0] == "audio_without_caption" and "(control_character: " in s[w[11]][0][1] \
        and "U+0007" in s[w[11]][0][1]
    assert reasons[key(12)].startswith(f"its recording {w[12]}: line 13 of wav2capt.txt was skipped (duplicate_wav: ")
    assert w[13][:-4] in u and key(13) not in reasons  # its own recording is fine
    assert s[w[16]] == [("bad_wav", "broken symbolic link (to '/nowhere/x.wav', which does not exist)")]
    assert s[w[17]] == [("bad_wav", "is a directory, not a file")]
    assert reasons[key(16)] == f"its recording {w[16]} was skipped (bad_wav: {s[w[16]][0][1]})"
    assert s[dev_image] == [("image_without_split", f"listed in no split list: line {i_dev + 1} of Flickr_8k.devImages.txt was "
                                                    "skipped (bad_split_line: line does not parse: "
                                                    f"'images/{dev_image}')")]
    dev_wavs = [c.split()[0] for c in capt[:60] if c.split()[1] == dev_image]
    assert len(dev_wavs) == 5 and all(s[x][0][0] == "image_not_in_split" and
                                      f"line {i_dev + 1} of Flickr_8k.devImages.txt" in s[x][0][1] for x in dev_wavs)
    # one skip per item (file or caption key): never two reasons for one thing
    items = [(x["kind"] if x["kind"] == "caption_without_audio" else "", x["file"], x["line"],
              x["reason"].split(" ")[0] if x["kind"] == "caption_without_audio" else "") for x in report["skips"]]
    assert len(items) == len(set(items))
    per_file = [x["file"] for x in report["skips"] if x["line"] is None and x["kind"] != "caption_without_audio"]
    assert len(per_file) == len(set(per_file))


# --- 8. corpus edits of the same size: seen by verify: content -----------------------------------------

def test_content_verification_sees_same_size_edits_and_ignores_touches(tiny_flickr, tmp_path):
    from vgs.corpus.manifest import corpus_files, digest

    root = tmp_path / "c"
    shutil.copytree(tiny_flickr, root)
    cache = tmp_path / "m" / ".hashes.json"
    stat0, content0 = digest([root]), digest([root], "content", cache)
    assert len(json.loads(cache.read_text())) == len(corpus_files([root]))
    wav = sorted((root / "flickr_audio" / "wavs").glob("*.wav"))[3]
    st = wav.stat()
    data = bytearray(wav.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 100] = bytes(b ^ 0x55 for b in data[mid:mid + 100])
    wav.write_bytes(bytes(data))  # other bytes, same size, mtime set back (the named case)
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert digest([root]) == stat0  # the documented limit of the fast default
    content1 = digest([root], "content", cache)
    assert content1 != content0
    os.utime(wav)  # touched, not changed: content says nothing changed, stat reruns
    assert digest([root], "content", cache) == content1 and digest([root]) != stat0
    wav.chmod(0o600)  # ctime only: re-hashed, same content
    assert digest([root], "content", cache) == content1
    cache.write_text("{damaged")  # a damaged hash cache: everything hashed again
    assert digest([root], "content", cache) == content1
    (root / "flickr_audio" / "wavs" / "new.wav").write_bytes(b"RIFF")
    added = digest([root], "content", cache)
    assert added != content1
    (root / "flickr_audio" / "wavs" / "new.wav").rename(root / "flickr_audio" / "wavs" / "renamed.wav")
    renamed = digest([root], "content", cache)
    assert renamed not in (added, content1)
    (root / "flickr_audio" / "wavs" / "renamed.wav").unlink()
    assert digest([root], "content", cache) == content1  # removed again: as before
