"""Content manifest of a corpus: every file it is made of, with size and modification time.

Snakemake compares file times of declared inputs only, and a corpus is a directory: a wav replaced
or a caption line appended inside it changes nothing Snakemake looks at.  Rule corpus_manifest
lists the files here; its `params` carry `digest()` of the same list, which Snakemake recomputes
every time it builds the DAG (stat calls only, no reading), so a changed file changes the params,
reruns the manifest rule and, through its output, ingest and everything after it.  Only the
standard library is used: the Snakefile imports this module."""
import hashlib
import os

from .text import LINE_END


def _wav_scp_files(data_dir):
    """Files a Kaldi wav.scp refers to: the path (relative ones as vgs.speech.kaldi_dir.resolve_wav
    resolves them), or for a piped command ('... |') every argument that is an existing file."""
    scp = os.path.join(data_dir, "wav.scp")
    if not os.path.isfile(scp):
        return []
    with open(scp, "rb") as fh:  # bytes: a bad encoding is the readers' error to report, not ours
        text = fh.read().decode("utf-8", errors="replace")
    out = []
    for line in LINE_END.split(text):
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        spec = parts[1].strip()
        for arg in spec[:-1].split() if spec.endswith("|") else [spec]:
            for p in (arg, os.path.join(data_dir, arg)):
                if os.path.isfile(p):
                    out.append(p)
                    break
    return out


def corpus_files(paths):
    """[(path, bytes, mtime_ns)], sorted, of the files under `paths` (directories walked, symlinks
    followed; a Kaldi data dir adds the files its wav.scp names).  A missing path has size -1."""
    names = []
    for top in map(str, paths):
        if not os.path.isdir(top):
            names.append(top)
            continue
        for d, dirs, files in os.walk(top, followlinks=True):
            dirs.sort()
            names += [os.path.join(d, f) for f in files]
        names += _wav_scp_files(top)
    rows = []
    for p in sorted(set(names)):
        try:
            st = os.stat(p)
            rows.append((p, st.st_size, st.st_mtime_ns))
        except OSError:
            rows.append((p, -1, 0))
    return rows


def as_tsv(rows):
    return "path\tbytes\tmtime_ns\n" + "".join(f"{p}\t{n}\t{t}\n" for p, n, t in rows)


def digest(paths):
    """sha256 of the manifest text: what Snakemake stores as the manifest rule's params."""
    return hashlib.sha256(as_tsv(corpus_files(paths)).encode()).hexdigest()
