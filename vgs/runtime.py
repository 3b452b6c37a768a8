"""Run-time plumbing shared by rule scripts: logging into the rule's log, atomic outputs."""
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("vgs")


@contextlib.contextmanager
def rule_logging(smk):
    """Send logging, stdout and stderr (tqdm bars) of a rule script to its log file."""
    path = Path(smk.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        t0 = time.time()
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            try:
                yield
            except Exception:
                log.exception("rule %s failed", getattr(smk, "rule", "?"))
                raise
            finally:
                log.info("wall time %.1f s", time.time() - t0)
                root.removeHandler(handler)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    A crash leaves at most `<path>.tmp-<pid>`, never a `path` that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


def strings(values):
    """HDF5 string data (bytes or str) as an object array of str."""
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def set_threads(n):
    """Bound torch/BLAS threads to the rule's `threads:`."""
    import torch

    torch.set_num_threads(max(1, int(n)))


def to_cpu(obj):
    """obj (tensor, or dicts/lists of them, e.g. a state dict) with every tensor on the CPU, so
    files written after GPU work load on any machine."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


_DEVICE = None


def torch_device():
    """cuda when torch sees a GPU (e.g. one SLURM allocated for `resources: gpu`), else cpu;
    the choice is logged once per process.  Callers move results back to the CPU for saving."""
    global _DEVICE
    if _DEVICE is None:
        import torch

        if torch.cuda.is_available():
            _DEVICE = torch.device("cuda", torch.cuda.current_device())
            log.info("using %s (%s)", _DEVICE, torch.cuda.get_device_name(_DEVICE))
        else:
            _DEVICE = torch.device("cpu")
            log.info("using cpu")
    return _DEVICE


class CacheError(RuntimeError):
    """A cached stage output (HDF5, torch, TSV, JSON) that cannot be read: names the file, the
    problem (`error`: an exception or a sentence) and how to rebuild it."""

    def __init__(self, path, what, error):
        why = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        super().__init__(f"{path}: cannot read this {what} ({why}); it is "
                         f"damaged or incomplete. Rebuild it with: snakemake --forcerun {path}")
        self.path = str(path)


def open_h5(path):
    """Open a cached HDF5 output of an earlier stage for reading.  A damaged or truncated file
    becomes a CacheError naming it and the command that rebuilds it (--forcerun takes output files),
    instead of h5py's message without a path."""
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise CacheError(path, "HDF5 cache", e) from e


def path_problem(path, what="file"):
    """Why `path` is not a regular file this process can open, in the operating system's words
    (missing, a broken symbolic link, a directory, a FIFO or device, permission denied, an I/O
    error), or None.  Opening is the only test that works for every user (root reads files
    without read permission)."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symbolic link (to {os.readlink(path)!r}, which does not exist)"
        return f"missing {what}: no such file"
    except OSError as e:  # e.g. a symlink loop, a path through a file, permission on a directory
        return f"cannot reach the {what}: {type(e).__name__}: {e.strerror or e}"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = "named pipe" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
        return f"not a regular file (a {kind})"
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as e:  # PermissionError, or EIO from a failing disk
        return f"cannot read the {what}: {type(e).__name__}: {e.strerror or e}"
    return None


def file_signature(path):
    """'path<TAB>size<TAB>mtime_ns' of an input file: what a resumed cache row must still match
    (a file replaced in place, or no longer listed, must not survive a resume)."""
    try:
        st = os.stat(path)
    except OSError:  # a missing file is the stage's own error to report
        return f"{path}\tmissing"
    return f"{path}\t{st.st_size}\t{st.st_mtime_ns}"


def open_partial(path):
    """Open a rule's own resumable `<output>.partial` HDF5 for appending.  One that cannot be read
    (e.g. a kill mid-write) is not an error: it is logged, removed and replaced by an empty file."""
    import h5py

    try:
        return h5py.File(path, "a")
    except (OSError, ValueError) as e:
        log.warning("%s unreadable (%s); starting afresh", path, e)
        os.unlink(path)
        return h5py.File(path, "w")


def load_torch(path, resume=False):
    """torch.load onto the CPU.  A damaged model (an earlier stage's output) is a CacheError like
    open_h5's; a damaged resume checkpoint (`resume=True`) is logged and ignored (None)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:  # a cut-short zip or pickle
        if resume:
            log.warning("ignoring %s: unreadable (%s)", path, e)
            return None
        raise CacheError(path, "torch file", e) from e


def shard_slice(n, scatteritem=None):
    """Rows of shard `scatteritem` ("i-of-k", Snakemake's scattergather wildcard) among n items:
    the i-th of k contiguous, in-order slices (None: all rows), so the shards concatenated in
    order are the unsharded order.  Shards may be empty when k > n."""
    if scatteritem is None:
        return slice(0, n)
    i, k = (int(x) for x in str(scatteritem).split("-of-"))
    if not 1 <= i <= k:
        raise ValueError(f"shard {scatteritem!r}: need 1 <= i <= k")
    return slice(n * (i - 1) // k, n * i // k)


def concat_h5(parts, out, attrs=None, block_rows=256):
    """Concatenate the datasets of HDF5 files `parts` along their first axis into `out`
    (atomically), in order, `block_rows` rows at a time (memory bounded); each dataset keeps the
    dtype, chunk shape and filters of its first appearance.  A dataset missing from a part with
    no rows (an empty shard) is fine.  File attributes: the first part's, updated by `attrs`."""
    import h5py

    srcs = [open_h5(p) for p in parts]
    try:
        names = list(dict.fromkeys(k for s in srcs for k in s.keys()))
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as dst:
            for name in names:
                have = [s[name] for s in srcs if name in s]
                first = have[0]
                n = sum(d.shape[0] for d in have)
                filters = dict(compression=first.compression, compression_opts=first.compression_opts,
                               shuffle=first.shuffle) if first.compression else {}
                chunks = None if first.chunks is None else (min(first.chunks[0], max(n, 1)), *first.chunks[1:])
                d = dst.create_dataset(name, (n, *first.shape[1:]), first.dtype, chunks=chunks,
                                       **filters)
                row = 0
                for src in have:
                    for i in range(0, src.shape[0], block_rows):
                        block = src[i:i + block_rows]
                        d[row:row + len(block)] = block
                        row += len(block)
                d.attrs.update(dict(first.attrs))
            if srcs:
                dst.attrs.update(dict(srcs[0].attrs))
            dst.attrs.update(attrs or {})
    finally:
        for s in srcs:
            s.close()


def file_hash(path):
    """Content hash of a file (blake2b-128, read in 1 MB blocks): the same weights wherever they live."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(params, *arrays):
    """What a training checkpoint must match to be resumed: `params` (JSON: the training config) and
    the exact data, `arrays` (their dtype and shape too)."""
    import hashlib
    import json

    h = hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class EpochCheckpoint:
    """Per-epoch training state of a resumable training loop, saved atomically (CPU tensors) after
    every epoch, keeping the best epoch on dev: the highest score, or the lowest with
    higher_is_better=False; a loop that passes no score keeps its last epoch.

    state: epoch (last finished), history (one record per epoch), best (state dict), best_epoch,
    best_score, and whatever else the loop adds.  A resumed run continues at state['epoch'] + 1 with
    the saved model and optimiser; a checkpoint of another fingerprint (config or data changed) or an
    unreadable one is ignored: training starts afresh."""

    def __init__(self, path, fingerprint, higher_is_better=True):
        self.path, self.fingerprint, self.higher_is_better = Path(path), fingerprint, higher_is_better
        self.state = {"epoch": 0, "history": [], "best": None, "best_epoch": 0,
                      "best_score": -1.0 if higher_is_better else float("inf")}

    def resume(self, model, optimizer):
        for stale in self.path.parent.glob(self.path.name + ".tmp-*"):  # left by a kill mid-save
            stale.unlink()
        ck = load_torch(self.path, resume=True) if self.path.exists() else None
        if ck is not None and ck.get("fingerprint") != self.fingerprint:
            log.info("ignoring stale checkpoint %s (config or data changed)", self.path)
        elif ck is not None:
            log.info("resuming from %s after epoch %d", self.path, ck["state"]["epoch"])
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optim"])
            self.state = ck["state"]

    def end_epoch(self, epoch, record, score, model, optimizer, stop_after_epoch=None):
        """Record the epoch, keep the model if `score` (None: no best kept) is the best so far, save;
        `stop_after_epoch` simulates a kill after saving (tests)."""
        import copy

        import torch

        self.state["history"].append(record)
        best = self.state["best_score"]
        if score is not None and (score > best if self.higher_is_better else score < best):
            self.state.update(best=copy.deepcopy(to_cpu(model.state_dict())), best_epoch=epoch, best_score=score)
        self.state["epoch"] = epoch
        ck = to_cpu({"fingerprint": self.fingerprint, "model": model.state_dict(),
                     "optim": optimizer.state_dict(), "state": self.state})
        with atomic_path(self.path) as tmp:
            torch.save(ck, tmp)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            raise KeyboardInterrupt(f"simulated kill after epoch {epoch}")

    def finish(self, model, score_name="best_dev_mean_recall"):
        """Load the best epoch's weights (if one was kept) into `model`; the training summary, the
        best score under `score_name`."""
        if self.state["best"] is not None:
            model.load_state_dict(self.state["best"])
        return {"best_epoch": self.state["best_epoch"], score_name: self.state["best_score"],
                "history": self.state["history"], "fingerprint": self.fingerprint}
