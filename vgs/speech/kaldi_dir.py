"""Reading a Kaldi data directory (the word corpus: wav.scp, utt2spk, text, a word CTM)."""
import logging
import os
import subprocess
import tempfile

import pandas as pd

from ..corpus.text import CorpusError, TextError, normalise, read_lines

log = logging.getLogger(__name__)


def read_table(path, ncols=2):
    """'key value...' lines → {key: rest-of-line}.  A key listed twice is an error, as in Kaldi's
    validate_data_dir.sh: which entry is right is unknown."""
    out, first = {}, {}
    for n, line in read_lines(path):
        parts = line.strip().split(None, ncols - 1)
        if not parts:
            continue
        if len(parts) < ncols:
            raise CorpusError(f"{path}:{n}: expected {ncols} fields, got {line.strip()!r}")
        if parts[0] in out:
            raise CorpusError(f"{path}:{n}: key {parts[0]!r} already on line {first[parts[0]]}")
        if "/" in parts[0]:  # ids name HDF5 datasets, where '/' makes groups
            raise CorpusError(f"{path}:{n}: key {parts[0]!r} contains '/'")
        out[parts[0]], first[parts[0]] = parts[1], n
    return out


def read_ctm(path):
    """CTM 'utt channel start duration word [conf]' → DataFrame utt_id, index, word, start, end.

    `index` is the word's position among the utterance's CTM lines (sorted by start time).  Words
    follow the caption text policy (vgs.corpus.text.normalise: "Dog," -> dog); an entry that is no
    word by it (<unk>, [noise], a punctuation mark) or splits into several (an emoji inside) is
    dropped, counted in the result's attrs['dropped_entries'] and logged; a control character is a
    CorpusError naming file and line."""
    rows, dropped = [], []
    for n, line in read_lines(path):
        p = line.split()
        if not p:
            continue
        try:
            start, dur = float(p[2]), float(p[3])
        except (IndexError, ValueError):
            start = dur = float("nan")
        if len(p) < 5 or not (start >= 0 and dur >= 0 and start + dur < float("inf")):
            raise CorpusError(f"{path}:{n}: a CTM line is 'utt channel start duration word' with start >= 0 "
                              f"and duration >= 0 seconds, got {line.strip()!r}")
        try:
            word = normalise(p[4])
        except TextError as e:
            raise CorpusError(f"{path}:{n}: {e}") from None
        if len(word.split()) != 1:
            dropped.append(f"{path}:{n} {p[4]!r}")
            continue
        # times to 0.1 ms, as aligners' word_segments.tsv (start + duration is not exact in binary)
        rows.append((p[0], round(start, 4), round(start + dur, 4), word))
    if dropped:
        log.warning("%d CTM entries are not one word by the text policy (dropped), e.g. %s", len(dropped), dropped[:5])
    df = pd.DataFrame(rows, columns=["utt_id", "start", "end", "word"]).sort_values(["utt_id", "start"])
    df["index"] = df.groupby("utt_id").cumcount()
    df = df[["utt_id", "index", "word", "start", "end"]].reset_index(drop=True)
    df.attrs["dropped_entries"] = len(dropped)
    return df


def check_dir(kaldi_dir):
    if os.path.exists(os.path.join(kaldi_dir, "segments")):
        raise ValueError(f"{kaldi_dir}/segments exists: recordings split by a segments file are not "
                         "supported; give one wav.scp entry per utterance")


def resolve_wav(spec, tmpdir, data_dir="."):
    """A wav.scp value: a path (relative to the working directory or, failing that, to the data
    dir), or a command ending in '|' (e.g. sph2pipe) run into a temporary wav."""
    if not spec.endswith("|"):
        alt = os.path.join(data_dir, spec)
        return alt if not os.path.isabs(spec) and not os.path.exists(spec) and os.path.exists(alt) \
            else spec
    fd, path = tempfile.mkstemp(suffix=".wav", dir=tmpdir)
    with os.fdopen(fd, "wb") as out:
        subprocess.run(spec[:-1], shell=True, stdout=out, check=True)
    return path
