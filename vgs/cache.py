"""The one writer and reader of the TSV and JSON files one stage writes and another reads back
(manifests, word segments, ASR hypotheses, coscos tokens, the generated corpus's ground truth,
every JSON report).  HDF5 and torch caches go through vgs.runtime.open_h5 / load_torch.

A TSV cache is written with a record beside it, `<file>.meta.json`: its columns, row count, size
and blake2b hash.  read_tsv checks, in this order, that the file ends with a line end (a cut last
line), that it parses, that it holds the rows and the content its writer recorded (a file cut at a
line end, or edited after), that the reader's columns are there, that every value of a typed
column parses (COLUMN_TYPES: `n` an integer, `start` a finite number ...) and that key columns are
unique.  Any failure is a vgs.runtime.CacheError naming the file, the problem and the command that
rebuilds it.  A TSV without a record (written by hand, or by an older version) is checked for form
only, with a warning.  A JSON cache must parse as an object with the keys its reader needs."""
import csv
import hashlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .runtime import CacheError, atomic_path

log = logging.getLogger(__name__)

# The type of every column name the stages exchange (CONTRIBUTING "Data interfaces"); a column not
# named here keeps pandas' own inference.  str columns are never parsed ("NA" stays a word).
COLUMN_TYPES = {
    **dict.fromkeys(["utt_id", "image_id", "path", "split", "caption", "wav", "speaker", "transcript",
                     "word", "category", "colour", "voice", "speaker_id"], str),
    **dict.fromkeys(["n", "index", "width", "height", "sample_rate", "channels", "object"], int),
    **dict.fromkeys(["duration", "start", "end", "x0", "y0", "x1", "y1"], float),
}


def meta_path(path):
    return Path(f"{path}.meta.json")


def _digest(data):
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def write_tsv(df, path):
    """`df` as a tab-separated file (header, no index) and its record, both written atomically."""
    data = df.to_csv(sep="\t", index=False, lineterminator="\n").encode()
    record = {"columns": [str(c) for c in df.columns], "rows": int(len(df)), "bytes": len(data),
              "blake2b": _digest(data)}
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        with atomic_path(meta_path(path)) as mtmp:  # the record first: never a file without it
            mtmp.write_text(json.dumps(record) + "\n")


def _fail(path, problem):
    raise CacheError(path, "TSV cache", problem)


def _typed(path, df, col, kind, offset=2):
    """Column `col` converted to `kind`; CacheError naming the first value that is not one."""
    s = df[col]
    if kind is str:
        return s
    num = pd.to_numeric(s, errors="coerce")
    bad = ~np.isfinite(num.to_numpy(np.float64))
    if kind is int:
        bad |= ~bad & (num.to_numpy(np.float64) % 1 != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(path, f"line {i + offset}: column {col!r} is {s.iloc[i]!r}, not "
                    f"{'an integer' if kind is int else 'a finite number'}")
    return num.astype(np.int64) if kind is int else num.astype(np.float64)


def read_tsv(path, columns=(), unique=None):
    """A validated TSV cache (see the module doc) as a DataFrame; `columns` are the ones the reader
    needs, `unique` the column(s) that must identify a row."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        _fail(path, f"{type(e).__name__}: {e.strerror or e}")
    if not data:
        _fail(path, "empty file (not even a header line)")
    if not data.endswith(b"\n"):
        _fail(path, f"its last line is cut (no line end after {data[-40:].decode(errors='replace')!r})")
    try:
        with warnings.catch_warnings():  # a row longer than the header: named below
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            df = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, index_col=False)
    except (ValueError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
        _fail(path, f"does not parse as TSV ({type(e).__name__}: {e})")
    record = _record(path)
    if record is None:  # the bytes are not known: at least every row has the header's fields
        log.warning("%s: no record of its writer (%s); rows and content not checked", path, meta_path(path).name)
        rows = csv.reader(io.StringIO(data.decode("utf-8", errors="replace")), delimiter="\t")
        for i, row in enumerate(rows, 1):
            if len(row) != len(df.columns):
                _fail(path, f"record {i} has {len(row)} fields, the header {len(df.columns)}")
    elif len(df) != record["rows"]:
        _fail(path, f"holds {len(df)} rows; its writer wrote {record['rows']}")
    elif list(df.columns) != record["columns"]:
        _fail(path, f"has columns {list(df.columns)}; its writer wrote {record['columns']}")
    elif len(data) != record["bytes"] or _digest(data) != record["blake2b"]:
        _fail(path, f"{len(data)} bytes differ from the {record['bytes']} its writer wrote "
                    f"(edited or damaged since)")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        _fail(path, f"lacks columns {missing} (has {list(df.columns)})")
    for col in df.columns:
        kind = COLUMN_TYPES.get(col)
        if kind is not None:
            df[col] = _typed(path, df, col, kind)
        elif len(df):  # unknown columns: numbers where every value is one, as pandas would infer
            num = pd.to_numeric(df[col], errors="coerce")
            if not num.isna().any():
                df[col] = num
    if unique:
        key = [unique] if isinstance(unique, str) else list(unique)
        dup = np.flatnonzero(df.duplicated(key).to_numpy())
        if len(dup):
            _fail(path, f"line {dup[0] + 2}: {', '.join(f'{k}={df.loc[dup[0], k]}' for k in key)} repeats an earlier row")
    return df


def _record(path):
    m = meta_path(path)
    if not m.exists():
        return None
    try:
        rec = json.loads(m.read_text())
        if not isinstance(rec, dict) or not {"rows", "columns", "bytes", "blake2b"} <= rec.keys():
            raise ValueError("not a record of rows, columns, bytes and blake2b")
        return rec
    except (OSError, ValueError) as e:
        _fail(path, f"its record {m.name} is unreadable ({type(e).__name__}: {e})")


def read_json(path, keys=()):
    """A JSON cache (a stage's report, metrics or history) as a dict holding at least `keys`."""
    try:
        obj = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CacheError(path, "JSON cache", f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}") from e
    if not isinstance(obj, dict):
        raise CacheError(path, "JSON cache", f"holds a {type(obj).__name__}, not an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise CacheError(path, "JSON cache", f"lacks keys {missing}")
    return obj


def write_json(obj, path, indent=1):
    """`obj` as JSON (with a final line end), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent) + "\n")
