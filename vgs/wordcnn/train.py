"""Supervised pretraining of a word net as an isolated-word classifier (paper Sec. 3, Table 2).

Checkpoints after every epoch (vgs.runtime.EpochCheckpoint, next to the model) and resumes from it
after a kill; a checkpoint whose parameters or input file differ is ignored.  No best epoch (there is
no dev split): the last epoch is the model.  Shuffling and dropout are re-seeded from (seed, epoch)
every epoch, so a resumed run gives bit-identical weights.
Runs on a visible GPU (vgs.runtime.torch_device); data stay on the CPU and go over per batch,
and files hold CPU tensors, so a model trained on a GPU loads anywhere."""
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..runtime import EpochCheckpoint, atomic_path, file_signature, fingerprint, open_h5, torch_device
from .data import read_meta, read_windows, split_tokens
from .filters import conv1_diagnostics
from .models import WordNet, save_model

log = logging.getLogger(__name__)


def _optimizer(model, p):
    if p["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    if p["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"],
                               weight_decay=p["weight_decay"])
    raise ValueError(f"unknown optimizer {p['optimizer']!r}; use 'adam' or 'sgd'")


@torch.inference_mode()
def evaluate(model, x, y, batch_size=512):
    """Top-1 / top-5 accuracy (fractions) and inference windows/s."""
    model.eval()
    dev = next(model.parameters()).device
    t0 = time.perf_counter()
    hit1 = hit5 = 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size].to(dev))
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        yy = y[i:i + batch_size, None].to(dev)
        hit1 += int((top[:, :1] == yy).sum())
        hit5 += int((top == yy).any(1).sum())
    dt = time.perf_counter() - t0
    n = max(1, len(x))
    return hit1 / n, hit5 / n, len(x) / max(dt, 1e-9)


def train(windows_path, model_out, metrics_out, params, on_epoch_end=None, device=None):
    """Train params['arch'] on the word windows; write model_out (.pt) and metrics_out (.json).

    on_epoch_end(epoch) is called after each epoch's checkpoint is written (tests use it to
    simulate a kill).  device: default vgs.runtime.torch_device()."""
    p = dict(params)
    model_out, metrics_out = Path(model_out), Path(metrics_out)
    torch.set_num_threads(max(1, int(p.get("threads", 1))))

    with open_h5(windows_path) as f:
        has_spk = "speakers" in f
    meta = read_meta(windows_path, extra=("speakers",) if has_spk else ())
    classes, labels, tr, te = split_tokens(meta["words"], meta.get("speakers"), p["min_tokens"],
                                           p["test_fraction"], p["split"], p["seed"])
    rows = np.sort(np.concatenate([tr, te]))
    x_all = torch.from_numpy(read_windows(windows_path, rows))
    pos = np.searchsorted(rows, tr), np.searchsorted(rows, te)
    xtr, xte = x_all[pos[0]], x_all[pos[1]]
    del x_all
    ytr, yte = torch.from_numpy(labels[tr]), torch.from_numpy(labels[te])

    torch.manual_seed(p["seed"])
    model = WordNet(p["arch"], len(classes), dropout=p["dropout"], conv1_init_std=p.get("conv1_init_std"),
                    frames=xtr.shape[1], dim=xtr.shape[2])
    conv1_init = None if model.conv1 is None else model.conv1.weight.detach().clone()  # for filters.py
    model.mean.copy_(xtr.mean(0))  # pixel-by-pixel mean over the training set
    dev = torch.device(device) if device is not None else torch_device()
    model.to(dev)  # before the optimizer, so its state lives on the same device
    opt = _optimizer(model, p)
    ck = EpochCheckpoint(model_out.with_name("checkpoint.pt"),
                         fingerprint({"params": p, "windows": file_signature(windows_path)}))
    ck.state.update(train_time=0.0, seen=0)
    ck.resume(model, opt)

    n, bs = len(xtr), p["batch_size"]
    for epoch in range(ck.state["epoch"], p["epochs"]):  # 0-based here, 1-based in the history and the log
        g = torch.Generator().manual_seed(p["seed"] * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g)
        torch.manual_seed(p["seed"] * 1_000_003 + epoch + 1)  # the dropout stream
        model.train()
        t0, loss_sum = time.perf_counter(), 0.0
        for i in tqdm(range(0, n, bs), desc=f"{p['arch']} epoch {epoch + 1}/{p['epochs']}",
                      mininterval=5, leave=False):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(xtr[idx].to(dev)), ytr[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        dt = time.perf_counter() - t0
        ck.state.update(train_time=ck.state["train_time"] + dt, seen=ck.state["seen"] + n)
        top1, top5, _ = evaluate(model, xte, yte)
        log.info("%s epoch %d: loss %.4f, test top-1 %.3f top-5 %.3f, %.0f windows/s",
                 p["arch"], epoch + 1, loss_sum / n, top1, top5, n / dt)
        ck.end_epoch(epoch + 1, {"epoch": epoch + 1, "loss": loss_sum / n, "test_top1": top1, "test_top5": top5,
                                 "seconds": dt}, None, model, opt)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)

    top1, top5, infer_rate = evaluate(model, xte, yte)
    k = min(len(xtr), len(xte))
    tr1, tr5, _ = evaluate(model, xtr[:k], ytr[:k])
    conv1 = None if conv1_init is None else conv1_diagnostics(model, conv1_init, xte, yte, p["seed"])
    metrics = {
        "arch": p["arch"], "classes": len(classes), "train_tokens": len(tr), "test_tokens": len(te),
        "split": p["split"], "epochs": p["epochs"], "top1": top1, "top5": top5,
        "train_top1": tr1, "train_top5": tr5, "chance_top1": 1 / len(classes),
        "params": sum(t.numel() for t in model.parameters()),
        "train_windows_per_s": ck.state["seen"] / max(ck.state["train_time"], 1e-9),
        "train_seconds": ck.state["train_time"], "inference_windows_per_s": infer_rate, "device": str(dev),
        "conv1": conv1, "history": ck.state["history"], "config": p,
    }
    log.info("%s: test top-1 %.3f top-5 %.3f (%d classes); train %.0f windows/s, inference %.0f windows/s",
             p["arch"], top1, top5, len(classes), metrics["train_windows_per_s"], infer_rate)
    model.cpu()
    with atomic_path(model_out) as tmp:
        save_model(tmp, model, classes, {"config": p, "conv1_init": conv1_init,
                                         "metrics": {k: v for k, v in metrics.items() if k != "history"}})
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    ck.path.unlink(missing_ok=True)
    return metrics
