"""Run-time plumbing shared by rule scripts: logging into the rule's log, atomic outputs."""
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

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
                import shutil

                shutil.rmtree(tmp)
            else:
                tmp.unlink()


def set_threads(n):
    """Bound torch/BLAS threads to the rule's `threads:`."""
    import torch

    torch.set_num_threads(max(1, int(n)))
