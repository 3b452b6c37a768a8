"""Read a Flickr8k + Flickr Audio Caption Corpus directory (the real one or ours) into manifests.

Every problem is either a `CorpusError` naming the file (structure missing, too much bad data) or a
counted skip listed in the ingest report with file, line and reason: nothing is dropped silently."""
import json
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import soundfile as sf
from PIL import Image

from ..speech.audio import file_problem

log = logging.getLogger(__name__)
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
TOKEN_LINE = re.compile(r"^(?P<image>[^\s#]+\.jpg)#(?P<n>\d+)\t(?P<caption>.*\S.*)$")
WAV2CAPT_LINE = re.compile(r"^(?P<wav>\S+\.wav)\s+(?P<image>\S+\.jpg)\s+#(?P<n>\d+)\s*$")


class CorpusError(Exception):
    """The corpus cannot be read: names the file and the problem."""


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


def _read_lines(path, pattern, skips, kind):
    rows = []
    for i, line in enumerate(_required(path).read_text(encoding="utf-8", errors="strict").splitlines(), 1):
        if not line.strip():
            continue
        m = pattern.match(line.rstrip("\r"))
        if m:
            rows.append({**m.groupdict(), "line": i})
        else:
            skips.add(kind, path, f"line does not parse: {line[:80]!r}", i)
    return rows


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
    except Exception as e:
        return None, f"unreadable audio: {type(e).__name__}: {e}"
    if info.frames == 0:
        return None, "empty audio (0 samples)"
    return info, None


def ingest(root, out_dir, threads=4, max_skip_fraction=0.2):
    """Write images.tsv, captions.tsv, utterances.tsv and ingest_report.json into `out_dir`."""
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: corpus root is not a directory")
    skips = Skips()
    txt, img_dir, audio = root / "Flickr8k_text", root / "Flickr8k_Dataset", root / "flickr_audio"

    split_of = {}
    for split, name in SPLIT_FILES.items():
        for i, line in enumerate(_required(txt / name).read_text().splitlines(), 1):
            if line.strip():
                if line.strip() in split_of:
                    skips.add("image_in_two_splits", txt / name, f"{line.strip()} already in {split_of[line.strip()]}", i)
                    continue
                split_of[line.strip()] = split

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
    captions = {}
    for r in _read_lines(token_file, TOKEN_LINE, skips, "bad_caption_line"):
        key = (r["image"][:-4], int(r["n"]))
        if not normalise(r["caption"]):
            skips.add("empty_caption", token_file, "caption has no words", r["line"])
        else:
            captions[key] = r["caption"].strip()

    utts = []
    pairs = _read_lines(audio / "wav2capt.txt", WAV2CAPT_LINE, skips, "bad_wav2capt_line")
    speakers = {}
    for i, line in enumerate(_required(audio / "wav2spk.txt").read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) == 2:
            speakers[parts[0]] = parts[1]
        elif line.strip():
            skips.add("bad_wav2spk_line", audio / "wav2spk.txt", f"line does not parse: {line[:80]!r}", i)
    wav_paths = [audio / "wavs" / r["wav"] for r in pairs]
    with ThreadPoolExecutor(threads) as ex:
        infos = list(ex.map(_check_wav, wav_paths))
    listed = set()
    for r, path, (info, err) in zip(pairs, wav_paths, infos):
        image_id, n = r["image"][:-4], int(r["n"])
        listed.add(r["wav"])
        if err:
            skips.add("bad_wav", path, err)
        elif r["image"] not in split_of:
            skips.add("image_not_in_split", path, f"{r['image']} is in no train/dev/test list")
        elif image_id not in good_images:
            skips.add("image_unusable", path, f"its image {r['image']} was skipped")
        elif (image_id, n) not in captions:
            skips.add("audio_without_caption", path, f"no caption {r['image']}#{n} in {token_file.name}")
        else:
            utts.append({
                "utt_id": r["wav"][:-4], "image_id": image_id, "n": n, "wav": str(path),
                "speaker": speakers.get(r["wav"], "unknown"), "split": split_of[r["image"]],
                "duration": round(info.frames / info.samplerate, 4), "sample_rate": info.samplerate,
                "channels": info.channels, "transcript": normalise(captions[(image_id, n)]),
            })
    if (audio / "wavs").is_dir():
        for p in sorted((audio / "wavs").glob("*.wav")):
            if p.name not in listed:
                skips.add("wav_not_in_wav2capt", p, "audio file not listed in wav2capt.txt")
    spoken = {(u["image_id"], u["n"]) for u in utts}
    in_wav2capt = {(r["image"][:-4], int(r["n"])) for r in pairs}
    for (image_id, n) in sorted(captions):
        if (image_id, n) not in spoken and image_id in good_images:
            why = "its recording was skipped (see above)" if (image_id, n) in in_wav2capt else "not in wav2capt.txt"
            skips.add("caption_without_audio", token_file, f"{image_id}.jpg#{n} has no usable recording: {why}")
    utts = pd.DataFrame(utts, columns=["utt_id", "image_id", "n", "wav", "speaker", "split", "duration",
                                       "sample_rate", "channels", "transcript"])
    caps = pd.DataFrame([(i, n, c) for (i, n), c in sorted(captions.items())], columns=["image_id", "n", "caption"])

    total = len(pairs) + len(split_of)
    fraction = len(skips.items) / max(1, total)
    report = {
        "root": str(root), "images": len(images), "captions": len(caps), "utterances": len(utts),
        "speakers": int(utts.speaker.nunique()), "hours": round(float(utts.duration.sum()) / 3600, 3),
        "vocabulary": len({w for t in utts.transcript for w in t.split()}),
        "per_split": {s: {"images": int((images.split == s).sum()), "utterances": int((utts.split == s).sum())}
                      for s in SPLIT_FILES},
        "skipped": skips.counts(), "skips": skips.items,
    }
    if fraction > max_skip_fraction:
        raise CorpusError(f"{root}: {len(skips.items)} problems in {total} entries ({fraction:.0%} > "
                          f"max_skip_fraction {max_skip_fraction}); first: {skips.items[:3]}")
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
