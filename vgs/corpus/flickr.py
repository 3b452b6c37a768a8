"""Read a Flickr8k + Flickr Audio Caption Corpus directory (the real one or ours) into manifests.

Every problem is either a `CorpusError` naming the file (structure missing, not UTF-8, too much bad
data) or a counted skip listed in the ingest report with file, line and reason: nothing is dropped
silently.  Every text file is read by vgs.corpus.text.read_lines (BOM and CRLF accepted)."""
import json
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import soundfile as sf
from PIL import Image

from ..speech.audio import file_problem, nonfinite_problem
from .text import CorpusError, read_lines

__all__ = ["CorpusError", "ingest", "normalise"]

log = logging.getLogger(__name__)
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
# File names, never paths: an id becomes an HDF5 dataset and a file name downstream.  \w is
# Unicode-aware but excludes a stray byte-order mark (U+FEFF), so one mid-file fails to parse.
IMAGE = r"[\w.-]+\.jpg"
SPLIT_LINE = re.compile(rf"^\s*(?P<image>{IMAGE})\s*$")
TOKEN_LINE = re.compile(rf"^(?P<image>{IMAGE})#(?P<n>\d+)\t(?P<caption>.*\S.*)$")
WAV2CAPT_LINE = re.compile(rf"^(?P<wav>[\w.-]+\.wav)\s+(?P<image>{IMAGE})\s+#(?P<n>\d+)\s*$")
WAV2SPK_LINE = re.compile(r"^(?P<wav>\S+)\s+(?P<speaker>\S+)\s*$")


def normalise(caption):
    """Caption text -> aligner transcript: lower case, whitespace tokens, punctuation-only tokens dropped,
    surrounding punctuation stripped ("dog." -> "dog"; "dog's" stays)."""
    words = (w.strip(".,;:!?\"()[]") for w in caption.lower().split())
    return " ".join(w for w in words if w and any(c.isalnum() for c in w))


class Skips:
    """Counted, logged skips; ends up in the ingest report."""

    def __init__(self):
        self.items = []

    def add(self, kind, file, reason, line=None):
        self.items.append({"kind": kind, "file": str(file), "line": line, "reason": reason})
        log.warning("skip %s: %s%s: %s", kind, file, f":{line}" if line else "", reason)

    def counts(self):
        return dict(Counter(i["kind"] for i in self.items))


def _required(path):
    if not path.exists():
        raise CorpusError(f"{path}: missing (expected the Flickr8k + FACC layout, see README)")
    return path


def _parse(path, pattern, skips, kind):
    """The lines of `path` matching `pattern` as dicts (+ 'line'); others are skips of `kind`."""
    rows = []
    for i, line in read_lines(_required(path)):
        if not line.strip():
            continue
        m = pattern.match(line)
        if m:
            rows.append({**m.groupdict(), "line": i, "file": path})
        else:
            skips.add(kind, path, f"line does not parse: {line[:80]!r}", i)
    return rows


def _unique(rows, key, value, skips, conflict):
    """{key: row} with one row per key.  A line repeating an earlier one is collapsed (counted
    `duplicate_line`); a key given different values keeps none of them (every line counted as
    `conflict`), since which one is right is unknown.  Returns (rows by key, {dropped key: why})."""
    groups = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    kept, dropped = {}, {}
    for k, rs in groups.items():
        if len({value(r) for r in rs}) == 1:
            kept[k] = rs[0]
            for r in rs[1:]:
                skips.add("duplicate_line", r["file"], f"repeats line {rs[0]['line']} (collapsed)", r["line"])
            continue
        where = ", ".join(f"{r['file'].name}:{r['line']} {value(r)}" for r in rs)
        dropped[k] = f"given different values ({where}); none is used"
        for r in rs:
            skips.add(conflict, r["file"], f"{k} {dropped[k]}", r["line"])
    return kept, dropped


def _check_image(path):
    if not path.is_file():
        return None, None, "missing image file"
    try:
        with Image.open(path) as im:
            im.load()  # decodes the whole file: truncated JPEGs fail here, not later
            return im.width, im.height, None
    except Exception as e:  # PIL raises many types for bad files
        return None, None, f"unreadable image: {type(e).__name__}: {e}"


def _check_wav(path):
    problem = file_problem(path)
    if problem:
        return None, problem
    try:
        info = sf.info(str(path))
        if info.subtype in ("FLOAT", "DOUBLE"):  # only float audio can hold NaN/inf: read those
            problem = nonfinite_problem(sf.read(str(path), dtype="float32")[0])
    except Exception as e:
        return None, f"unreadable audio: {type(e).__name__}: {e}"
    if info.frames == 0:
        return None, "empty audio (0 samples)"
    return (None, problem) if problem else (info, None)


def ingest(root, out_dir, threads=4, max_skip_fraction=0.2):
    """Write images.tsv, captions.tsv, utterances.tsv and ingest_report.json into `out_dir`."""
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: corpus root is not a directory")
    skips = Skips()
    txt, img_dir, audio = root / "Flickr8k_text", root / "Flickr8k_Dataset", root / "flickr_audio"

    rows_split = [{**r, "split": split} for split, name in SPLIT_FILES.items()
                  for r in _parse(txt / name, SPLIT_LINE, skips, "bad_split_line")]
    listed_split, two_splits = _unique(rows_split, lambda r: r["image"], lambda r: r["split"], skips,
                                       "image_in_two_splits")
    split_of = {name: r["split"] for name, r in listed_split.items()}

    images = []
    names = sorted(split_of)
    with ThreadPoolExecutor(threads) as ex:
        checks = list(ex.map(lambda n: _check_image(img_dir / n), names))
    for name, (w, h, err) in zip(names, checks):
        if err:
            skips.add("bad_image", img_dir / name, err)
        else:
            images.append({"image_id": name[:-4], "path": str(img_dir / name), "split": split_of[name], "width": w, "height": h})
    images = pd.DataFrame(images, columns=["image_id", "path", "split", "width", "height"])
    good_images = set(images.image_id)

    token_file = txt / "Flickr8k.token.txt"
    by_key, ambiguous = _unique(_parse(token_file, TOKEN_LINE, skips, "bad_caption_line"),
                                lambda r: f"{r['image']}#{int(r['n'])}", lambda r: r["caption"].strip(),
                                skips, "conflicting_caption")
    captions = {}
    for r in by_key.values():
        if not normalise(r["caption"]):
            skips.add("empty_caption", token_file, "caption has no words", r["line"])
        else:
            captions[(r["image"][:-4], int(r["n"]))] = r["caption"].strip()

    utts = []
    parsed = _parse(audio / "wav2capt.txt", WAV2CAPT_LINE, skips, "bad_wav2capt_line")
    listed = {r["wav"] for r in parsed}
    pairs, _ = _unique(parsed, lambda r: r["wav"], lambda r: f"{r['image']} #{int(r['n'])}", skips,
                       "duplicate_wav")
    pairs = list(pairs.values())
    speakers, _ = _unique(_parse(audio / "wav2spk.txt", WAV2SPK_LINE, skips, "bad_wav2spk_line"),
                          lambda r: r["wav"], lambda r: r["speaker"], skips, "conflicting_speaker")
    wav_paths = [audio / "wavs" / r["wav"] for r in pairs]
    with ThreadPoolExecutor(threads) as ex:
        infos = list(ex.map(_check_wav, wav_paths))
    for r, path, (info, err) in zip(pairs, wav_paths, infos):
        image_id, n = r["image"][:-4], int(r["n"])
        key = f"{r['image']}#{n}"
        if err:
            skips.add("bad_wav", path, err)
        elif r["image"] in two_splits:
            skips.add("image_unusable", path, f"its image {r['image']} is in two split lists (see image_in_two_splits)")
        elif r["image"] not in split_of:
            skips.add("image_not_in_split", path, f"{r['image']} is in no train/dev/test list")
        elif image_id not in good_images:
            skips.add("image_unusable", path, f"its image {r['image']} was skipped")
        elif key in ambiguous:
            skips.add("audio_without_caption", path, f"caption {key} in {token_file.name} is {ambiguous[key]}")
        elif (image_id, n) not in captions:
            skips.add("audio_without_caption", path, f"no caption {key} in {token_file.name}")
        else:
            utts.append({
                "utt_id": r["wav"][:-4], "image_id": image_id, "n": n, "wav": str(path),
                "speaker": speakers[r["wav"]]["speaker"] if r["wav"] in speakers else "unknown",
                "split": split_of[r["image"]],
                "duration": round(info.frames / info.samplerate, 4), "sample_rate": info.samplerate,
                "channels": info.channels, "transcript": normalise(captions[(image_id, n)]),
            })
    if (audio / "wavs").is_dir():
        for p in sorted((audio / "wavs").glob("*.wav")):
            if p.name not in listed:
                skips.add("wav_not_in_wav2capt", p, "audio file not listed in wav2capt.txt")
    spoken = {(u["image_id"], u["n"]) for u in utts}
    in_wav2capt = {(r["image"][:-4], int(r["n"])) for r in parsed}
    for (image_id, n) in sorted(captions):
        if (image_id, n) not in spoken and image_id in good_images:
            why = "its recording was skipped (see above)" if (image_id, n) in in_wav2capt else "not in wav2capt.txt"
            skips.add("caption_without_audio", token_file, f"{image_id}.jpg#{n} has no usable recording: {why}")
    utts = pd.DataFrame(utts, columns=["utt_id", "image_id", "n", "wav", "speaker", "split", "duration",
                                       "sample_rate", "channels", "transcript"])
    caps = pd.DataFrame([(i, n, c) for (i, n), c in sorted(captions.items())], columns=["image_id", "n", "caption"])

    total = len(parsed) + len(rows_split)
    fraction = len(skips.items) / max(1, total)
    report = {
        "root": str(root), "images": len(images), "captions": len(caps), "utterances": len(utts),
        "speakers": int(utts.speaker.nunique()), "hours": round(float(utts.duration.sum()) / 3600, 3),
        "vocabulary": len({w for t in utts.transcript for w in t.split()}),
        "captions_with_several_recordings": int(utts.groupby(["image_id", "n"]).size().gt(1).sum()),
        "per_split": {s: {"images": int((images.split == s).sum()), "utterances": int((utts.split == s).sum())}
                      for s in SPLIT_FILES},
        "skipped": skips.counts(), "skips": skips.items,
    }
    if fraction > max_skip_fraction:
        raise CorpusError(f"{root}: {len(skips.items)} problems in {total} entries ({fraction:.0%} > "
                          f"max_skip_fraction {max_skip_fraction}); first: {skips.items[:3]}")
    for split, name in SPLIT_FILES.items():  # training, model choice and recall each need one
        if not (utts.split == split).any():
            raise CorpusError(f"{txt / name}: no image of split {split!r} has a usable recording "
                              f"(skipped: {skips.counts()})")
    out_dir.mkdir(parents=True, exist_ok=True)
    from vgs.runtime import atomic_path

    for name, df in (("images.tsv", images), ("captions.tsv", caps), ("utterances.tsv", utts)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, sep="\t", index=False)
    with atomic_path(out_dir / "ingest_report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    log.info("ingest %s: %d images, %d utterances, %d speakers, %.2f h; skipped %s", root, len(images),
             len(utts), report["speakers"], report["hours"], skips.counts() or "nothing")
    return report
