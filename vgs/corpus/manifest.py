"""Content manifest of a corpus: every file it is made of, with size and modification time.

Snakemake compares file times of declared inputs only, and a corpus is a directory: a wav replaced
or a caption line appended inside it changes nothing Snakemake looks at.  Rule corpus_manifest
lists the files here; its `params` carry `digest()` of the same list, which Snakemake recomputes
every time it builds the DAG (stat calls only, no reading), so a changed file changes the params,
reruns the manifest rule and, through its output, ingest and everything after it.  With
ingest.verify: content the digest is of the files' bytes (hashed once, then again only when a
file's stat changes).  Only the standard library is used: the Snakefile imports this module."""
import hashlib
import json
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


def corpus_files(paths, verify="stat", cache=None):
    """[(path, bytes, mtime_ns)], sorted, of the files under `paths` (directories walked, symlinks
    followed; a Kaldi data dir adds the files its wav.scp names).  A missing or unreadable path has
    size -1.  verify='content' adds each file's blake2b hash as a fourth field, taken from `cache`
    (a JSON file) while the file's size, mtime, ctime and inode are unchanged: a file rewritten in
    place always changes its ctime, even when its mtime is set back."""
    names = []
    for top in map(str, paths):
        if not os.path.isdir(top):
            names.append(top)
            continue
        for d, dirs, files in os.walk(top, followlinks=True):
            dirs.sort()
            names += [os.path.join(d, f) for f in files]
        names += _wav_scp_files(top)
    known = _load(cache) if verify == "content" else {}
    rows, hashes = [], {}
    for p in sorted(set(names)):
        try:
            st = os.stat(p)
        except OSError:
            rows.append((p, -1, 0) + (("",) if verify == "content" else ()))
            continue
        if verify != "content":
            rows.append((p, st.st_size, st.st_mtime_ns))
            continue
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        old = known.get(p)
        h = old[4] if old and old[:4] == key else _hash(p)
        hashes[p] = key + [h]
        rows.append((p, st.st_size, st.st_mtime_ns, h))
    if cache and verify == "content" and hashes != known:
        os.makedirs(os.path.dirname(cache) or ".", exist_ok=True)
        tmp = f"{cache}.tmp-{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump(hashes, fh)
        os.replace(tmp, cache)
    return rows


def _hash(path):
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:  # unreadable: ingest names it; here it is one more state of the file
        return f"unreadable:{e.errno}"
    return h.hexdigest()


def _load(cache):
    try:
        with open(cache) as fh:
            return json.load(fh)
    except (OSError, ValueError, TypeError):  # none yet, or damaged: hash everything again
        return {}


def as_tsv(rows):
    head = "path\tbytes\tmtime_ns" + ("\tblake2b" if rows and len(rows[0]) == 4 else "")
    return head + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)


def digest(paths, verify="stat", cache=None):
    """sha256 of the manifest text (with verify='content', of paths, sizes and hashes: a file
    touched without a change reruns nothing): what Snakemake stores as the manifest rule's params."""
    rows = corpus_files(paths, verify, cache)
    if verify == "content":
        rows = [(p, n, h) for p, n, _, h in rows]
    return hashlib.sha256(as_tsv(rows).encode()).hexdigest()
