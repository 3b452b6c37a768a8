"""SGD training of the fragment model (paper sec. 4) with per-epoch atomic checkpoints, resume and
best-epoch selection on the dev split.  Runs on a visible GPU (vgs.runtime.torch_device): data stay
on the CPU and go over per batch; checkpoints and models hold CPU tensors."""
import hashlib
import json
import logging
import time

import numpy as np
import torch
from tqdm import tqdm

from vgs import retrieval
from vgs.fragment import TRAIN_KEYS
from vgs.fragment.model import FragmentModel, chunked_scores, margin_cost, score_matrix
from vgs.runtime import EpochCheckpoint, atomic_path, fingerprint, load_torch, to_cpu, torch_device

log = logging.getLogger(__name__)


def config_hash(cfg):
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _gather_rows(offsets, caps):
    """Row indices of the words of captions `caps` (concatenated) and their local caption ids."""
    starts, lens = offsets[caps], offsets[caps + 1] - offsets[caps]
    local = np.repeat(np.arange(len(caps)), lens)
    within = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    return starts[local] + within, local


def _epoch_batches(data, epoch, cfg):
    """Shuffled image batches with one random non-empty caption per image, seeded by (seed, epoch)
    so a resumed run draws exactly what an uninterrupted one would."""
    rng = np.random.default_rng([cfg["seed"], epoch])
    nonempty = np.flatnonzero(np.diff(data.offsets) > 0)
    by_img = data.cap_image[nonempty]
    count = np.bincount(by_img, minlength=len(data.image_ids))
    first = np.concatenate([[0], np.cumsum(count)[:-1]])  # captions are sorted by image
    imgs = rng.permutation(np.flatnonzero(count > 0))
    pick = nonempty[first[imgs] + (rng.random(len(imgs)) * count[imgs]).astype(np.int64)]
    b = cfg["batch_images"]
    return [(imgs[i:i + b], pick[i:i + b]) for i in range(0, len(imgs), b)]


def evaluate_split(model, data, ks=(1, 5, 10), mem_mb=512):
    S = chunked_scores(model, data.feats, data.words, data.seg, len(data.cap_ids), mem_mb)
    return retrieval.recall_table(*retrieval.ranks(S, data.cap_image), ks), S


def build_model(train, cfg):
    with torch.random.fork_rng():
        torch.manual_seed(cfg["seed"])
        model = FragmentModel(train.feats.shape[2], train.words.shape[1], cfg["embed_dim"],
                              cfg["standardize_images"])
    model.set_image_stats(train.feats, train.region_mask())
    return model


def train_model(train, dev, cfg, checkpoint, stop_after_epoch=None, mem_mb=512, device=None):
    """Train for cfg['epochs'] epochs; returns (best model, info), the model on `device` (default
    vgs.runtime.torch_device()). Resumes from `checkpoint` when it matches this config and data.
    `stop_after_epoch` simulates a kill (tests)."""
    fp = fingerprint({"seed": cfg["seed"], **{k: cfg[k] for k in TRAIN_KEYS}},
                     *(a for d in (train, dev) for a in (d.feats, d.words, d.seg, d.cap_image, d.region_mask())))
    model = build_model(train, cfg)
    device = torch.device(device) if device is not None else torch_device()
    model.to(device)  # before the optimizer, so its state lives on the same device
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg.get("weight_decay", 0.0))
    ck = EpochCheckpoint(checkpoint, fp)
    ck.resume(model, opt)
    x_tr = torch.as_tensor(train.words)
    v_tr = torch.as_tensor(train.feats)
    offsets = train.offsets
    for epoch in range(ck.state["epoch"] + 1, cfg["epochs"] + 1):
        t0 = time.time()
        model.train()
        batches = _epoch_batches(train, epoch, cfg)
        total, n_img = 0.0, 0
        for imgs, caps in tqdm(batches, desc=f"epoch {epoch}", mininterval=5):
            rows, local = _gather_rows(offsets, caps)
            y = model.embed_images(v_tr[imgs].to(device))
            x = model.embed_words(x_tr[rows].to(device))
            S = score_matrix(y, x, torch.as_tensor(local).to(device), len(caps))
            loss = margin_cost(S, cfg["margin"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            n_img += len(imgs)
        dev_tab, _ = evaluate_split(model, dev, mem_mb=mem_mb)
        score = retrieval.mean_recall(dev_tab)
        rec = {"epoch": epoch, "loss_per_image": total / max(1, n_img), "dev_mean_recall": score,
               "dev": dev_tab, "seconds": time.time() - t0, "images_per_s": n_img / (time.time() - t0)}
        log.info("epoch %d: loss/image %.4f, dev mean recall %.2f (search R@10 %.1f, annot R@10 %.1f), "
                 "%.0f images/s", epoch, rec["loss_per_image"], score, dev_tab["search"]["R@10"],
                 dev_tab["annotation"]["R@10"], rec["images_per_s"])
        ck.end_epoch(epoch, rec, score, model, opt, stop_after_epoch)
    return model, {**ck.finish(model), "device": str(device)}


def save_model(model, cfg, info, path):
    meta = {"image_dim": model.image_proj.in_features, "word_dim": model.word_proj.in_features,
            "embed_dim": model.image_proj.out_features, "standardize_images": model.standardize_images}
    with atomic_path(path) as tmp:
        torch.save({"state": to_cpu(model.state_dict()), "meta": meta, "config": cfg, "info": info}, tmp)


def load_model(path):
    """The saved model, on the CPU in eval mode, and the whole saved dict."""
    ck = load_torch(path)
    m = ck["meta"]
    model = FragmentModel(m["image_dim"], m["word_dim"], m["embed_dim"], m["standardize_images"])
    model.load_state_dict(ck["state"])
    model.eval()
    return model, ck


def run_training(regions_h5, words_h5, utterances_tsv, cfg, checkpoint, model_out, history_out,
                 eval_mem_mb=512):
    from vgs.fragment.data import load_split

    t0 = time.time()
    train = load_split(regions_h5, words_h5, utterances_tsv, "train")
    dev = load_split(regions_h5, words_h5, utterances_tsv, "dev")
    model, info = train_model(train, dev, cfg, checkpoint, mem_mb=eval_mem_mb)
    info.update(config=cfg, config_hash=config_hash(cfg), train_sizes=train.sizes(), dev_sizes=dev.sizes(),
                wall_s=time.time() - t0)
    if info["history"]:
        info["images_per_s"] = float(np.mean([h["images_per_s"] for h in info["history"]]))
    log.info("best epoch %d (dev mean recall %.2f); %.1f s", info["best_epoch"], info["best_dev_mean_recall"],
             info["wall_s"])
    save_model(model, cfg, info, model_out)
    with atomic_path(history_out) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return info
