"""Reading a Kaldi data directory (the word corpus: wav.scp, utt2spk, text, a word CTM)."""
import logging
import os
import subprocess
import tempfile

import pandas as pd

log = logging.getLogger(__name__)


def read_table(path, ncols=2):
    """'key value...' lines → {key: rest-of-line}."""
    out = {}
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            parts = line.strip().split(None, ncols - 1)
            if not parts:
                continue
            if len(parts) < ncols:
                raise ValueError(f"{path}:{n}: expected {ncols} fields, got {line.strip()!r}")
            out[parts[0]] = parts[1]
    return out


def read_ctm(path):
    """CTM 'utt channel start duration word [conf]' → DataFrame utt_id, index, word, start, end.

    `index` is the word's position among the utterance's CTM lines (sorted by start time)."""
    rows = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            p = line.split()
            if not p:
                continue
            if len(p) < 5:
                raise ValueError(f"{path}:{n}: CTM line needs utt channel start duration word")
            rows.append((p[0], float(p[2]), float(p[2]) + float(p[3]), p[4]))
    df = pd.DataFrame(rows, columns=["utt_id", "start", "end", "word"]).sort_values(["utt_id", "start"])
    df["index"] = df.groupby("utt_id").cumcount()
    return df[["utt_id", "index", "word", "start", "end"]].reset_index(drop=True)


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
