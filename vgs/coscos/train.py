"""Adadelta training of the coscos net (Synnaeve et al. 2014, §3) with per-epoch atomic checkpoints,
resume, learning curves and early stopping on the dev split.

A batch is `batch_images` images (paper: 1).  For each image: "same" pairs are every real fragment ×
every token of its captions; "different" pairs are every fragment × as many tokens drawn at random
from the split's other images (as many different as same pairs).  The published code
(dataset_iterators.py) draws one random token per same pair; here the random tokens of an image are
shared by its fragments, which keeps the same expected gradient with one token pass where the code
makes one per fragment (the speech tower dominates the cost).  Cost = Σ_pairs coscos² + λ Σ θ² (summed, as the published code);
after each Adadelta step every unit's incoming weights are clipped to max_norm.

Learning curves (the paper's Fig. 1 right): after every epoch (epoch 0 = the untrained net, the
random projection) mean cosine of same and of different pairs on a fixed sample of `curve_images`
training images and on all dev images, with fixed random draws.  Early stopping: the epoch with the
lowest dev coscos² cost per pair; training stops after `patience` epochs without a better one."""
import copy
import json
import logging
import time

import numpy as np
import torch
from tqdm import tqdm

from . import TRAIN_KEYS
from .model import CoscosNet, apply_max_norm, coscos2, cosines, l2_penalty
from ..runtime import EpochCheckpoint, atomic_path, fingerprint, load_torch, to_cpu, torch_device

log = logging.getLogger(__name__)

ARCH_KEYS = ("embed_dim", "image_layers", "speech_layers", "relu_cap")


def ranges(off, imgs):
    """Rows off[i]:off[i+1] of every image i in `imgs`, concatenated (CSR gather)."""
    starts, lens = off[imgs], off[imgs + 1] - off[imgs]
    return np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())


def draw_different(tok_off, imgs, rng):
    """For each image in `imgs`, as many random tokens of other images as it has tokens.
    Tokens are sorted by image, so image i's tokens are rows [o_i, o_i + n_i) and a draw from the
    N - n_i others is shifted past that range.  Returns (token rows, the image each draw is for)."""
    n = tok_off[imgs + 1] - tok_off[imgs]
    N = tok_off[-1]
    if (n >= N).any():
        raise ValueError("an image holds every token of its split: no 'different' pair can be drawn")
    owner, n_rep = np.repeat(imgs, n), np.repeat(n, n)
    r = (rng.random(len(owner)) * (N - n_rep)).astype(np.int64)
    return r + n_rep * (r >= np.repeat(tok_off[imgs], n)), owner


def batch_pairs(split, imgs, rng):
    """Rows and masks of one batch: fragments F, tokens T (same) + U (different), and the same and
    different masks over the F × (T + U) cosine matrix."""
    imgs = np.asarray(imgs, dtype=np.int64)
    f_rows, t_rows = ranges(split.offsets("frag"), imgs), ranges(split.offsets("tok"), imgs)
    u_rows, u_owner = draw_different(split.offsets("tok"), imgs, rng)
    f_img = split.frag_image[f_rows]
    same = f_img[:, None] == split.tok_image[t_rows][None, :]
    diff = f_img[:, None] == u_owner[None, :]
    return (f_rows, np.concatenate([t_rows, u_rows]), np.concatenate([same, np.zeros_like(diff)], 1),
            np.concatenate([np.zeros_like(same), diff], 1))


def pair_stats(model, split, imgs, seed, device, chunk=64):
    """Mean cosine of same and of different pairs and coscos² cost per pair on images `imgs` with
    random draws fixed by `seed` (the same pairs every epoch)."""
    rng = np.random.default_rng([seed, 7])
    s_sum = d_sum = loss = 0.0
    n_s = n_d = 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(imgs), chunk):
            f, t, same, diff = batch_pairs(split, imgs[i:i + chunk], rng)
            C = cosines(model.embed_images(torch.as_tensor(split.frags[f]).to(device)),
                        model.embed_tokens(torch.as_tensor(split.tokens[t]).to(device))).cpu()
            same, diff = torch.as_tensor(same), torch.as_tensor(diff)
            s_sum += C[same].sum().item()
            d_sum += C[diff].sum().item()
            loss += coscos2(C, same)[same | diff].sum().item()
            n_s += int(same.sum())
            n_d += int(diff.sum())
    return {"cos_same": s_sum / max(n_s, 1), "cos_diff": d_sum / max(n_d, 1),
            "loss_per_pair": loss / max(n_s + n_d, 1), "pairs": n_s + n_d}


def build_model(train, cfg, seed):
    model = CoscosNet(train.frags.shape[1], train.tokens.shape[1], **{k: cfg[k] for k in ARCH_KEYS})
    model.init_weights(cfg["init_scale"], torch.Generator().manual_seed(int(seed)))
    model.set_input_stats(train.frags.mean(0), train.frags.std(0) + 1e-6,
                          train.tokens.mean(0), train.tokens.std(0) + 1e-6)
    return model


def _with_tokens(split):
    return np.unique(split.tok_image)


def train_model(train, dev, cfg, seed, checkpoint, stop_after_epoch=None, device=None):
    """Returns (best model, initial state dict = the random projection, info). Resumes from
    `checkpoint` when it matches config, seed and data. `stop_after_epoch` simulates a kill."""
    fp = fingerprint({"seed": seed, **{k: cfg[k] for k in TRAIN_KEYS}},
                     *(a for d in (train, dev) for a in (d.tokens, d.tok_image, d.frags, d.frag_image)))
    device = torch.device(device) if device is not None else torch_device()
    model = build_model(train, cfg, seed)
    init = copy.deepcopy(to_cpu(model.state_dict()))
    model.to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=cfg["rho"], eps=cfg["eps"])
    train_imgs, dev_imgs = _with_tokens(train), _with_tokens(dev)
    curve_imgs = np.random.default_rng([seed, 3]).permutation(train_imgs)[:cfg["curve_images"]]
    ck = EpochCheckpoint(checkpoint, fp, higher_is_better=False)  # the lowest dev cost per pair is best
    ck.resume(model, opt)

    def record(epoch, extra):
        rec = {"epoch": epoch, "train": pair_stats(model, train, curve_imgs, seed, device),
               "dev": pair_stats(model, dev, dev_imgs, seed, device), **extra}
        log.info("epoch %d: train cos same %.3f diff %.3f | dev cos same %.3f diff %.3f, cost/pair %.4f%s",
                 epoch, rec["train"]["cos_same"], rec["train"]["cos_diff"], rec["dev"]["cos_same"],
                 rec["dev"]["cos_diff"], rec["dev"]["loss_per_pair"],
                 f" | {extra['pairs_per_s']:.0f} pairs/s" if "pairs_per_s" in extra else "")
        ck.end_epoch(epoch, rec, rec["dev"]["loss_per_pair"], model, opt, stop_after_epoch)

    if not ck.state["history"]:
        record(0, {})  # the random projection
    while ck.state["epoch"] < cfg["epochs"] and ck.state["epoch"] - ck.state["best_epoch"] < cfg["patience"]:
        epoch = ck.state["epoch"] + 1
        t0 = time.time()
        rng = np.random.default_rng([seed, epoch])  # a resumed run draws what an uninterrupted one would
        order = rng.permutation(train_imgs)
        b = cfg["batch_images"]
        model.train()
        total = n_pairs = 0.0
        for i in tqdm(range(0, len(order), b), desc=f"epoch {epoch}", mininterval=10):
            f, t, same, diff = batch_pairs(train, order[i:i + b], rng)
            same, diff = torch.as_tensor(same).to(device), torch.as_tensor(diff).to(device)
            C = cosines(model.embed_images(torch.as_tensor(train.frags[f]).to(device)),
                        model.embed_tokens(torch.as_tensor(train.tokens[t]).to(device)))
            pair_cost = coscos2(C, same)[same | diff].sum()
            cost = pair_cost + cfg["l2"] * l2_penalty(model)
            opt.zero_grad()
            cost.backward()
            opt.step()
            apply_max_norm(model, cfg["max_norm"])
            total += pair_cost.item()
            n_pairs += int(same.sum() + diff.sum())
        secs = time.time() - t0
        record(epoch, {"train_cost_per_pair": total / max(n_pairs, 1), "seconds": secs,
                       "pairs_per_s": n_pairs / max(secs, 1e-9)})
    stopped = "patience" if ck.state["epoch"] < cfg["epochs"] else "epochs"
    log.info("best epoch %d (dev cost/pair %.4f); stopped after epoch %d (%s)", ck.state["best_epoch"],
             ck.state["best_score"], ck.state["epoch"], stopped)
    info = {**ck.finish(model, "best_dev_cost_per_pair"), "epochs_run": ck.state["epoch"], "stopped_by": stopped,
            "device": str(device), "seed": int(seed)}
    return model, init, info


def save_model(model, init, cfg, info, path):
    meta = {"image_dim": model.image[0].in_features, "token_dim": model.speech[0].in_features,
            **{k: cfg[k] for k in ARCH_KEYS}}
    with atomic_path(path) as tmp:
        torch.save({"state": to_cpu(model.state_dict()), "init": init, "meta": meta, "config": cfg,
                    "info": {k: v for k, v in info.items() if k != "history"}}, tmp)


def load_model(path, which="state"):
    """The trained net (which='state') or the same net untrained (which='init': the random
    projection), on the CPU in eval mode, and the whole saved dict."""
    ck = load_torch(path)
    m = ck["meta"]
    model = CoscosNet(m["image_dim"], m["token_dim"], **{k: m[k] for k in ARCH_KEYS})
    model.load_state_dict(ck[which])
    model.eval()
    return model, ck


def run_training(tokens_tsv, fbank_h5, regions_h5, utterances_tsv, cfg, checkpoint, model_out, history_out):
    """cfg: the training keys and the seed (cfg['seed'])."""
    from .data import load_split

    t0 = time.time()
    train = load_split(tokens_tsv, fbank_h5, regions_h5, utterances_tsv, "train", cfg["frames"])
    dev = load_split(tokens_tsv, fbank_h5, regions_h5, utterances_tsv, "dev", cfg["frames"])
    t_load = time.time() - t0
    model, init, info = train_model(train, dev, cfg, cfg["seed"], checkpoint)
    info.update(config=cfg, train_sizes=train.sizes(), dev_sizes=dev.sizes(), load_s=t_load,
                wall_s=time.time() - t0)
    epochs = [h for h in info["history"] if "pairs_per_s" in h]
    if epochs:
        info["pairs_per_s"] = float(np.mean([h["pairs_per_s"] for h in epochs]))
    save_model(model, init, cfg, info, model_out)
    with atomic_path(history_out) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return info
