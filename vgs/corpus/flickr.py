"""Read a Flickr8k + Flickr Audio Caption Corpus directory (the real one or ours) into manifests.

Every problem is either a `CorpusError` naming the file (structure missing, not UTF-8, too much bad
data) or a counted skip listed in the ingest report with file, line and reason: nothing is dropped
silently.  Every text file is read by vgs.corpus.text.read_lines (BOM and CRLF accepted)."""
import logging
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import soundfile as sf

from ..cache import write_json, write_tsv
from ..images import BadImage, load_image
from ..runtime import path_problem
from ..speech.audio import file_problem, nonfinite_problem, plausibility_problem
from .text import CorpusError, TextError, normalise, read_lines

__all__ = ["CorpusError", "ingest", "normalise", "PLAUSIBILITY"]

log = logging.getLogger(__name__)
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
# File names, never paths: an id becomes an HDF5 dataset and a file name downstream.  \w is
# Unicode-aware but excludes a stray byte-order mark (U+FEFF), so one mid-file fails to parse.
# Whitespace around a line's fields is accepted in every file (the key and caption of the token
# file are separated by a tab, as published).
IMAGE = r"[\w.-]+\.jpg"
SPLIT_LINE = re.compile(rf"^\s*(?P<image>{IMAGE})\s*$")
TOKEN_LINE = re.compile(rf"^\s*(?P<image>{IMAGE})#(?P<n>\d+)\t(?P<caption>.*\S.*)$")
WAV2CAPT_LINE = re.compile(rf"^\s*(?P<wav>[\w.-]+\.wav)\s+(?P<image>{IMAGE})\s+#(?P<n>\d+)\s*$")
WAV2SPK_LINE = re.compile(r"^\s*(?P<wav>\S+)\s+(?P<speaker>\S+)\s*$")
# what a line that does not parse probably names: its consequences say so
MENTIONED_WAV = re.compile(r"([\w.-]+\.wav)")
MENTIONED_KEY = re.compile(rf"({IMAGE})\s*#\s*(\d+)")
MENTIONED_IMAGE = re.compile(rf"({IMAGE})")
# ingest.plausibility defaults (config.yaml): what a recording must be to be taken as speech
PLAUSIBILITY = {"action": "skip", "sample_rate": [8000, 96000], "words_per_second": [0.5, 12.0]}


class Skips:
    """Counted, logged skips; ends up in the ingest report.  `cause` names the earlier skip an
    item's skip is a consequence of."""

    def __init__(self):
        self.items = []
        self.by_item = {}  # file or key -> its skip, for the consequences' reasons

    def add(self, kind, file, reason, line=None, item=None):
        rec = {"kind": kind, "file": str(file), "line": line, "reason": reason}
        self.items.append(rec)
        self.by_item.setdefault(item if item is not None else str(file), rec)
        log.warning("skip %s: %s%s: %s", kind, file, f":{line}" if line else "", reason)
        return rec

    def counts(self):
        return dict(Counter(i["kind"] for i in self.items))


def why(rec):
    """A skip as the cause of another: 'its line 7 in wav2capt.txt was skipped (bad_wav2capt_line: ...)'."""
    where = f"line {rec['line']} of {Path(rec['file']).name}" if rec["line"] else Path(rec["file"]).name
    return f"{where} was skipped ({rec['kind']}: {rec['reason']})"


def _required(path):
    problem = path_problem(path, "corpus file")
    if problem:
        raise CorpusError(f"{path}: {problem} (expected the Flickr8k + FACC layout, see README)")
    return path


def _parse(path, pattern, skips, kind, mentions=()):
    """The lines of `path` matching `pattern` as dicts (+ 'line'); others are skips of `kind`,
    remembered under every item (`mentions`: (regex, key function)) the line names."""
    rows = []
    for i, line in read_lines(_required(path)):
        if not line.strip():
            continue
        m = pattern.match(line)
        if m:
            rows.append({**m.groupdict(), "line": i, "file": path})
            continue
        rec = skips.add(kind, path, f"line does not parse: {line[:80]!r}", i)
        for regex, key in mentions:
            for found in regex.finditer(line):
                skips.by_item.setdefault(key(found), rec)
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
            skips.add(conflict, r["file"], f"{k} {dropped[k]}", r["line"], item=(conflict, k))
    return kept, dropped


def _check_image(path, min_side):
    """(displayed width, height, None) or (None, None, problem)."""
    try:
        arr = load_image(path, min_side)
    except BadImage as e:
        return None, None, str(e).split(": ", 1)[1]
    return arr.shape[1], arr.shape[0], None


def _check_wav(path, n_words, plausibility):
    """(soundfile info, None, None), or (None, kind, problem) with kind bad_wav or implausible_audio.
    With `n_words` (its transcript's words) and a plausibility check, the samples are read."""
    problem = file_problem(path)
    if problem:
        return None, "bad_wav", problem
    try:
        info = sf.info(str(path))
        if info.frames == 0:
            return None, "bad_wav", "empty audio (0 samples)"
        x = None
        if info.subtype in ("FLOAT", "DOUBLE") or (n_words and plausibility["action"] != "ignore"):
            x = sf.read(str(path), dtype="float32")[0]
    except Exception as e:  # libsndfile error types vary between versions
        return None, "bad_wav", f"unreadable audio: {type(e).__name__}: {e}"
    problem = nonfinite_problem(x) if info.subtype in ("FLOAT", "DOUBLE") else None
    if problem:  # only float audio can hold NaN/inf
        return None, "bad_wav", problem
    if x is not None and n_words and plausibility["action"] != "ignore":
        problem = plausibility_problem(x, info.samplerate, n_words, plausibility)
        if problem:
            return info, "implausible_audio", problem
    return info, None, None


def ingest(root, out_dir, threads=4, max_skip_fraction=0.2, plausibility=None, min_image_side=32):
    """Write images.tsv, captions.tsv, utterances.tsv and ingest_report.json into `out_dir`.

    Each item (image, caption, recording) is kept, or skipped once with its own reason; an item
    skipped because of another's skip says which (`why`).  `plausibility`: ingest.plausibility
    (PLAUSIBILITY: action skip | flag | ignore, sample_rate and words_per_second ranges)."""
    root, out_dir = Path(root), Path(out_dir)
    plaus = {**PLAUSIBILITY, **(plausibility or {})}
    if not root.is_dir():
        raise CorpusError(f"{root}: corpus root is not a directory")
    skips = Skips()
    txt, img_dir, audio = root / "Flickr8k_text", root / "Flickr8k_Dataset", root / "flickr_audio"
    for d in (img_dir, audio / "wavs"):  # every image or recording is in one of these
        try:
            os.listdir(d)
        except OSError as e:
            raise CorpusError(f"{d}: cannot list this directory ({type(e).__name__}: {e.strerror or e}); "
                              f"expected the Flickr8k + FACC layout, see README") from None

    image_named = [(MENTIONED_IMAGE, lambda m: ("image", m[1]))]
    rows_split = [{**r, "split": split} for split, name in SPLIT_FILES.items()
                  for r in _parse(txt / name, SPLIT_LINE, skips, "bad_split_line", image_named)]
    listed_split, two_splits = _unique(rows_split, lambda r: r["image"], lambda r: r["split"], skips,
                                       "image_in_two_splits")
    split_of = {name: r["split"] for name, r in listed_split.items()}

    # images: decoded as displayed (EXIF orientation applied), at least min_image_side px a side
    images = []
    names = sorted(split_of)
    with ThreadPoolExecutor(threads) as ex:
        checks = list(ex.map(lambda n: _check_image(img_dir / n, min_image_side), names))
    for name, (w, h, err) in zip(names, checks):
        if err:
            skips.add("bad_image", img_dir / name, err, item=("image", name))
        else:
            images.append({"image_id": name[:-4], "path": str(img_dir / name), "split": split_of[name], "width": w, "height": h})
    images = pd.DataFrame(images, columns=["image_id", "path", "split", "width", "height"])
    good_images = set(images.image_id)
    for p in sorted(img_dir.glob("*.jpg")):  # image files no split list names (Flickr8k has 91)
        if p.name not in split_of and p.name not in two_splits:
            cause = skips.by_item.get(("image", p.name))
            skips.add("image_without_split", p, "listed in no split list" + (f": {why(cause)}" if cause else ""))

    # captions: the text policy (vgs.corpus.text.normalise); a control character is a skip
    token_file = txt / "Flickr8k.token.txt"
    by_key, ambiguous = _unique(
        _parse(token_file, TOKEN_LINE, skips, "bad_caption_line", [(MENTIONED_KEY, lambda m: ("caption", f"{m[1]}#{int(m[2])}"))]),
        lambda r: f"{r['image']}#{int(r['n'])}", lambda r: r["caption"].strip(), skips, "conflicting_caption")
    captions, transcripts = {}, {}
    for key, r in by_key.items():
        try:
            words = normalise(r["caption"])
        except TextError as e:
            skips.add("control_character", token_file, f"{key}: {e}", r["line"], item=("caption", key))
            continue
        if not words:
            skips.add("empty_caption", token_file, f"{key}: caption has no words", r["line"], item=("caption", key))
            continue
        captions[(r["image"][:-4], int(r["n"]))] = r["caption"].strip()
        transcripts[(r["image"][:-4], int(r["n"]))] = words

    capt_file = audio / "wav2capt.txt"
    parsed = _parse(capt_file, WAV2CAPT_LINE, skips, "bad_wav2capt_line",
                    [(MENTIONED_WAV, lambda m: ("wav", m[1])), (MENTIONED_KEY, lambda m: ("audio_of", f"{m[1]}#{int(m[2])}"))])
    listed = {r["wav"] for r in parsed}
    pairs, _ = _unique(parsed, lambda r: r["wav"], lambda r: f"{r['image']} #{int(r['n'])}", skips,
                       "duplicate_wav")
    pairs = list(pairs.values())
    speakers, _ = _unique(_parse(audio / "wav2spk.txt", WAV2SPK_LINE, skips, "bad_wav2spk_line"),
                          lambda r: r["wav"], lambda r: r["speaker"], skips, "conflicting_speaker")
    key_of = lambda r: (r["image"][:-4], int(r["n"]))
    wav_paths = [audio / "wavs" / r["wav"] for r in pairs]
    n_words = [len(transcripts[key_of(r)].split()) if key_of(r) in transcripts else 0 for r in pairs]
    with ThreadPoolExecutor(threads) as ex:
        infos = list(ex.map(lambda a: _check_wav(*a, plaus), zip(wav_paths, n_words)))

    utts, flagged, wav_skip = [], [], {}
    for r, path, (info, kind, err) in zip(pairs, wav_paths, infos):
        image_id, n = key_of(r)
        key = f"{r['image']}#{n}"
        image_cause = skips.by_item.get(("image", r["image"]))
        caption_cause = skips.by_item.get(("caption", key)) or skips.by_item.get(("conflicting_caption", key))
        if kind == "bad_wav":
            wav_skip[key] = skips.add("bad_wav", path, err)
        elif r["image"] in two_splits:
            wav_skip[key] = skips.add("image_unusable", path, f"its image {r['image']} is in two split lists (image_in_two_splits)")
        elif r["image"] not in split_of:
            wav_skip[key] = skips.add("image_not_in_split", path, f"its image {r['image']} is in no train/dev/test list"
                                      + (f": {why(image_cause)}" if image_cause else ""))
        elif image_id not in good_images:
            wav_skip[key] = skips.add("image_unusable", path, f"its image {why(image_cause)}")
        elif (image_id, n) not in captions:
            wav_skip[key] = skips.add("audio_without_caption", path, f"its caption {key}: {why(caption_cause)}" if caption_cause
                                      else f"no caption {key} in {token_file.name}")
        elif kind == "implausible_audio" and plaus["action"] == "skip":
            wav_skip[key] = skips.add("implausible_audio", path, err)
        else:
            if kind == "implausible_audio":
                flagged.append({"kind": kind, "file": str(path), "reason": err})
                log.warning("flagged %s: %s (kept: ingest.plausibility.action is flag)", path, err)
            utts.append({
                "utt_id": r["wav"][:-4], "image_id": image_id, "n": n, "wav": str(path),
                "speaker": speakers[r["wav"]]["speaker"] if r["wav"] in speakers else "unknown",
                "split": split_of[r["image"]],
                "duration": round(info.frames / info.samplerate, 4), "sample_rate": info.samplerate,
                "channels": info.channels, "transcript": transcripts[(image_id, n)],
            })
    for p in sorted((audio / "wavs").glob("*.wav")):
        if p.name not in listed:
            cause = skips.by_item.get(("wav", p.name))
            if cause:
                skips.add("wav_entry_skipped", p, f"its {why(cause)}")
            else:
                skips.add("wav_not_in_wav2capt", p, "audio file not listed in wav2capt.txt")
    spoken = {(u["image_id"], u["n"]) for u in utts}
    recorded = {}
    for r in parsed:
        recorded.setdefault(f"{r['image']}#{int(r['n'])}", r["wav"])
    for (image_id, n) in sorted(captions):
        key = f"{image_id}.jpg#{n}"
        if (image_id, n) in spoken or image_id not in good_images:
            continue
        if key in wav_skip:
            reason = f"its recording {Path(wav_skip[key]['file']).name} was skipped ({wav_skip[key]['kind']}: {wav_skip[key]['reason']})"
        elif key in recorded:  # its wav is listed for two captions (duplicate_wav)
            cause = skips.by_item.get(("duplicate_wav", recorded[key]))
            reason = f"its recording {recorded[key]}: {why(cause)}" if cause else f"its recording {recorded[key]} was skipped"
        elif ("audio_of", key) in skips.by_item:
            reason = f"its {why(skips.by_item[('audio_of', key)])}"
        else:
            reason = f"not in {capt_file.name}"
        skips.add("caption_without_audio", token_file, f"{key} has no usable recording: {reason}")
    utts = pd.DataFrame(utts, columns=["utt_id", "image_id", "n", "wav", "speaker", "split", "duration",
                                       "sample_rate", "channels", "transcript"])
    caps = pd.DataFrame([(i, n, c) for (i, n), c in sorted(captions.items())], columns=["image_id", "n", "caption"])

    # the share of listed images and recordings that is unusable (a consequence counts once: an
    # image's five recordings lost with it are the image's loss, not five more problems)
    bad_lines = Counter(s["kind"] for s in skips.items)
    total = (len({r["image"] for r in rows_split}) + bad_lines["bad_split_line"] + len(listed)
             + bad_lines["bad_wav2capt_line"])
    lost = total - len(images) - len(utts) - sum(1 for r in pairs if r["image"][:-4] not in good_images
                                                 and (r["image"] in split_of or r["image"] in two_splits))
    fraction = max(0, lost) / max(1, total)
    report = {
        "root": str(root), "images": len(images), "captions": len(caps), "utterances": len(utts),
        "speakers": int(utts.speaker.nunique()), "hours": round(float(utts.duration.sum()) / 3600, 3),
        "vocabulary": len({w for t in utts.transcript for w in t.split()}),
        "captions_with_several_recordings": int(utts.groupby(["image_id", "n"]).size().gt(1).sum()),
        "per_split": {s: {"images": int((images.split == s).sum()), "utterances": int((utts.split == s).sum())}
                      for s in SPLIT_FILES},
        "skipped": skips.counts(), "skips": skips.items,
        "flagged": flagged, "settings": {"plausibility": plaus, "min_image_side": min_image_side},
    }
    if fraction > max_skip_fraction:
        raise CorpusError(f"{root}: {lost} of {total} listed images and recordings unusable ({fraction:.0%} > "
                          f"max_skip_fraction {max_skip_fraction}); skipped {skips.counts()}; first: {skips.items[:3]}")
    for split, name in SPLIT_FILES.items():  # training, model choice and recall each need one
        if not (utts.split == split).any():
            raise CorpusError(f"{txt / name}: no image of split {split!r} has a usable recording "
                              f"(skipped: {skips.counts()})")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in (("images.tsv", images), ("captions.tsv", caps), ("utterances.tsv", utts)):
        write_tsv(df, out_dir / name)
    write_json(report, out_dir / "ingest_report.json")
    log.info("ingest %s: %d images, %d utterances, %d speakers, %.2f h; skipped %s", root, len(images),
             len(utts), report["speakers"], report["hours"], skips.counts() or "nothing")
    return report
