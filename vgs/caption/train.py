"""Training of one caption system (one seed): a dual encoder of an audio net and an image tower,
scored by a similarity and trained with a loss over in-batch impostors.

An epoch visits every training image once with one of its captions drawn at random (so a batch
never holds two captions of one image, whose "impostor" would be a true match), in an order and
with impostors drawn from (seed, epoch, batch): a resumed run draws exactly what an uninterrupted
one would.  Every epoch ends with dev-split retrieval and an atomic checkpoint; the best epoch on
dev (mean of R@1/5/10 both ways) is kept.  `init` (a model file of the same system trained on another
corpus: MILAN's pretraining) starts the run from those weights instead of the seeded initialisation;
its content hash is part of the resume fingerprint.  Mode `untrained` freezes the audio net at its seeded
initialisation and trains the image tower only (the matchmap paper's "(R)" rows); its audio
embeddings are computed once.  Runs on a visible GPU; files hold CPU tensors."""
import json
import logging
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import retrieval
from ..runtime import EpochCheckpoint, atomic_path, file_hash, fingerprint as runtime_fingerprint, to_cpu, torch_device
from . import OPTIONAL_KEYS, TRAIN_KEYS
from .data import pad_batch
from .models import ImageTower, build_audio_encoder, save_audio_encoder
from .scoring import batch_loss, chunked_similarity, similarity

log = logging.getLogger(__name__)



class DualEncoder(nn.Module):
    def __init__(self, audio, image, similarity="dot", normalize="none"):
        super().__init__()
        self.audio, self.image = audio, image
        self.similarity, self.normalize = similarity, normalize

    @property
    def pooled(self):
        """dot and sisa need only pooled vectors: captions and images become one 'frame'/'cell'."""
        return self.similarity in ("dot", "sisa")

    def embed_images(self, v):
        I = self.image(v)
        return I.mean(1, keepdim=True) if self.pooled else I

    def caption_outputs(self, x, lengths):
        A, L = self.audio(x, lengths)
        if self.pooled:
            return self.audio.pool(A, L)[:, None, :], torch.ones_like(L)
        return A, L

    def score(self, I, A, L):
        return similarity(self.similarity, I, A, L, self.normalize)


def build_model(cfg, feat_dim, image_feats):
    """The seeded initial model for cfg (audio weights depend only on the seed and the audio spec),
    or, with cfg['init'] (a model file), that model's weights and image statistics."""
    with torch.random.fork_rng():
        torch.manual_seed(cfg["seed"])
        audio = build_audio_encoder({"arch": cfg["audio"], "feat_dim": int(feat_dim), "width": cfg["width"]})
        image = ImageTower({"kind": cfg["image"], "in_dim": int(image_feats.shape[1]),
                            "embed_dim": audio.embed_dim, "kernel": cfg["image_kernel"]})
    image.set_stats(image_feats)
    model = DualEncoder(audio, image, cfg["similarity"], cfg["normalize"])
    init = cfg.get("init")
    if init:
        pre, _ = load_model(init)
        if dict(pre.audio.spec) != dict(audio.spec) or dict(pre.image.spec) != dict(image.spec):
            raise ValueError(f"{init}: pretrained model has audio {dict(pre.audio.spec)} / image "
                             f"{dict(pre.image.spec)}, this run needs {dict(audio.spec)} / {dict(image.spec)}")
        model.load_state_dict(pre.state_dict())
    return model


@torch.no_grad()
def embed_captions(model, frames, offsets, idx=None, batch_size=64, pad_to=None):
    """Caption outputs of items `idx` (default all), packed: (sum T', D) float32 and offsets.
    Batches are formed from captions of similar length (less padding); results do not depend on it."""
    model.eval()
    dev = next(model.parameters()).device
    idx = np.arange(len(offsets) - 1) if idx is None else np.asarray(idx)
    order = idx[np.argsort(np.diff(offsets)[idx], kind="stable")]
    outs = {}
    for b in range(0, len(order), batch_size):
        items = order[b:b + batch_size]
        x, L = pad_batch(frames, offsets, items, pad_to)
        A, La = model.caption_outputs(x.to(dev), L.to(dev))
        for j, c in enumerate(items):
            outs[c] = A[j, :int(La[j])].cpu().numpy()
    chunks = [outs[c] for c in idx]
    return np.concatenate(chunks), np.concatenate([[0], np.cumsum([len(c) for c in chunks])])


@torch.no_grad()
def embed_images(model, images, batch_size=64):
    model.eval()
    dev = next(model.parameters()).device
    out = [model.embed_images(torch.as_tensor(images[i:i + batch_size]).to(dev))
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def score_split(model, data, mem_mb=512, batch_size=64, outputs=None):
    """(K, C) scores of a split (numpy) and the seconds spent embedding captions and scoring;
    `outputs`: the captions' packed outputs when already known (a frozen audio net)."""
    t0, c0 = time.perf_counter(), time.process_time()
    A, offs = outputs or embed_captions(model, data.frames, data.offsets, batch_size=batch_size, pad_to=data.pad_to)
    t_audio, c_audio = time.perf_counter() - t0, time.process_time() - c0
    I = embed_images(model, data.images, batch_size)
    S = chunked_similarity(model.similarity, I, A, offs, model.normalize, mem_mb)
    return S.cpu().numpy(), {"embed_captions_s": t_audio, "embed_captions_cpu_s": c_audio,
                             "score_s": time.perf_counter() - t0 - t_audio}


def evaluate_split(model, data, ks=(1, 5, 10), mem_mb=512, outputs=None):
    S, timing = score_split(model, data, mem_mb, outputs=outputs)
    return retrieval.recall_table(*retrieval.ranks(S, data.cap_image), ks), S, timing


def fingerprint(cfg, *datas):
    """What a checkpoint must match to be resumed: the training config, the exact data and the
    content of the pretrained model it starts from.  Not the number of epochs: nothing before the
    last epoch depends on it, so a run given more epochs goes on from where a shorter one stopped,
    exactly as if it had been asked for them from the start."""
    keys = {k: cfg[k] for k in (*TRAIN_KEYS, "mode", "seed") if k != "epochs"}
    keys.update({k: cfg[k] for k in OPTIONAL_KEYS if cfg.get(k)})
    if cfg.get("init"):
        keys["init"] = file_hash(cfg["init"])  # the weights, wherever the file lives
    return runtime_fingerprint(keys, *(a for d in datas for a in (d.frames, d.offsets, d.images, d.cap_image)))


def epoch_batches(data, epoch, cfg):
    """Shuffled batches of (image, one random caption of it), seeded by (seed, epoch); a last batch
    of a single pair (no impostor possible) joins the previous one."""
    rng = np.random.default_rng([cfg["seed"], epoch])
    count = np.bincount(data.cap_image, minlength=len(data.image_ids))
    first = np.concatenate([[0], np.cumsum(count)[:-1]])  # captions are sorted by image
    imgs = rng.permutation(np.flatnonzero(count > 0))
    caps = first[imgs] + (rng.random(len(imgs)) * count[imgs]).astype(np.int64)
    b = cfg["batch_size"]
    cuts = list(range(0, len(imgs), b))
    if len(cuts) > 1 and len(imgs) - cuts[-1] < 2:
        cuts.pop()
    return [(imgs[a:z], caps[a:z]) for a, z in zip(cuts, cuts[1:] + [len(imgs)])]


def make_optimizer(cfg, params):
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; allowed: sgd, adam")


def epoch_lr(cfg, epoch):
    """Geometric decay: lr * lr_decay ** floor((epoch - 1) / lr_decay_every)."""
    return cfg["lr"] * cfg["lr_decay"] ** ((epoch - 1) // cfg["lr_decay_every"])


def train_model(train, dev, cfg, checkpoint, device=None, stop_after_epoch=None, mem_mb=512):
    """Train for cfg['epochs']; returns (best model on `device`, info).  Resumes from `checkpoint` when
    it matches this config and data; `stop_after_epoch` simulates a kill (tests)."""
    fp = fingerprint(cfg, train, dev)
    model = build_model(cfg, train.feat_dim, train.images)
    device = torch.device(device) if device is not None else torch_device()
    model.to(device)
    frozen = cfg["mode"] == "untrained"
    if frozen:
        model.audio.requires_grad_(False)
    opt = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    ck = EpochCheckpoint(checkpoint, fp)
    ck.resume(model, opt)
    src, dev_outputs = (train.frames, train.offsets), None
    if frozen:  # the audio net never changes: its outputs once, then batches of them
        t0 = time.perf_counter()
        src, dev_outputs = (embed_captions(model, d.frames, d.offsets, pad_to=d.pad_to) for d in (train, dev))
        log.info("untrained audio net: %d training and %d dev captions embedded once in %.1f s",
                 len(train.cap_ids), len(dev.cap_ids), time.perf_counter() - t0)
    if cfg.get("init") and "init_dev" not in ck.state:  # where a fine-tuned run starts (saved with epoch 1)
        tab, _, _ = evaluate_split(model, dev, mem_mb=mem_mb)
        ck.state["init_dev"] = {"dev_mean_recall": retrieval.mean_recall(tab), "dev": tab}
        log.info("initialised from %s: dev mean recall %.2f before any update", cfg["init"], retrieval.mean_recall(tab))
    images = torch.as_tensor(train.images)
    for epoch in range(ck.state["epoch"] + 1, cfg["epochs"] + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        for g in opt.param_groups:
            g["lr"] = epoch_lr(cfg, epoch)
        model.train()
        if frozen:
            model.audio.eval()
        total, n = 0.0, 0
        batches = epoch_batches(train, epoch, cfg)
        for b, (imgs, caps) in enumerate(tqdm(batches, desc=f"epoch {epoch}", mininterval=10)):
            x, L = pad_batch(*src, caps, None if frozen else train.pad_to)
            x, L = x.to(device), L.to(device)
            if frozen:
                A, La = x, L
            else:
                A, La = model.caption_outputs(x, L)
            S = model.score(model.embed_images(images[imgs].to(device)), A, La)
            loss = batch_loss(cfg["loss"], S, cfg, np.random.default_rng([cfg["seed"], epoch, b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            n += len(caps)
        t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
        dev_tab, _, timing = evaluate_split(model, dev, mem_mb=mem_mb, outputs=dev_outputs)
        score = retrieval.mean_recall(dev_tab)
        rec = {"epoch": epoch, "lr": epoch_lr(cfg, epoch), "loss": total / max(1, len(batches)),
               "dev_mean_recall": score, "dev": dev_tab, "train_s": t_train,
               "train_captions_per_s": n / max(t_train, 1e-9), "train_captions_per_cpu_s": n / max(c_train, 1e-9),
               "dev_captions_per_s": len(dev.cap_ids) / max(timing["embed_captions_s"], 1e-9),
               "dev_score_s": timing["score_s"], "seconds": time.perf_counter() - t0,
               "cpu_s": time.process_time() - c0}
        log.info("epoch %d: loss %.4f, dev mean recall %.2f (search R@10 %.1f, annot R@10 %.1f), "
                 "train %.0f captions/s, %.1f s (%.1f CPU s)", epoch, rec["loss"], score,
                 dev_tab["search"]["R@10"], dev_tab["annotation"]["R@10"], rec["train_captions_per_s"],
                 rec["seconds"], rec["cpu_s"])
        ck.end_epoch(epoch, rec, score, model, opt, stop_after_epoch)
    extra = {"init_dev": ck.state["init_dev"]} if "init_dev" in ck.state else {}
    return model, {**ck.finish(model), "device": str(device), **extra}


def save_model(model, cfg, info, path):
    with atomic_path(path) as tmp:
        torch.save({"audio": save_audio_encoder(model.audio),
                    "image": {"spec": dict(model.image.spec), "state": to_cpu(model.image.state_dict())},
                    "similarity": model.similarity, "normalize": model.normalize,
                    "config": cfg, "info": info}, tmp)


def load_model(path):
    """The saved dual encoder, on the CPU in eval mode, and the whole saved dict."""
    from .models import load_audio_encoder

    audio, ck = load_audio_encoder(path)
    image = ImageTower(ck["image"]["spec"])
    image.load_state_dict(ck["image"]["state"])
    return DualEncoder(audio, image, ck["similarity"], ck["normalize"]).eval(), ck


def run_training(feats_h5, image_h5, utterances_tsv, cfg, checkpoint, model_out, history_out, mem_mb=512):
    """cfg: the training keys (TRAIN_KEYS, and OPTIONAL_KEYS when set); feats_h5: frame features."""
    from .data import load_split

    t0, c0 = time.perf_counter(), time.process_time()
    train, dev = (load_split(feats_h5, image_h5, cfg["image"], utterances_tsv, s, cfg["max_frames"], cfg["grid"],
                             cfg.get("fixed_seconds")) for s in ("train", "dev"))
    model, info = train_model(train, dev, cfg, checkpoint, mem_mb=mem_mb)
    hist = info["history"]
    info.update(config=cfg, train_sizes=train.sizes(), dev_sizes=dev.sizes(), wall_s=time.perf_counter() - t0,
                cpu_s=time.process_time() - c0,
                params={"audio": sum(p.numel() for p in model.audio.parameters()),
                        "image": sum(p.numel() for p in model.image.parameters())})
    if hist:
        info["train_captions_per_s"] = float(np.mean([h["train_captions_per_s"] for h in hist]))
        # epochs recorded before this figure existed (a checkpoint of an older version) lack it
        cpu = [h["train_captions_per_cpu_s"] for h in hist if "train_captions_per_cpu_s" in h]
        info["train_captions_per_cpu_s"] = float(np.mean(cpu)) if cpu else None
        if cfg["mode"] != "untrained":  # a frozen net's dev captions are embedded once, not per epoch
            info["infer_captions_per_s"] = float(np.mean([h["dev_captions_per_s"] for h in hist]))
        # CPU seconds of all epochs (training + dev evaluation), the same whether or not the run resumed
        info["epochs_cpu_s"] = float(sum(h["cpu_s"] for h in hist))
    log.info("best epoch %d (dev mean recall %.2f); %.1f s wall, %.1f CPU s", info["best_epoch"],
             info["best_dev_mean_recall"], info["wall_s"], info["cpu_s"])
    save_model(model, cfg, info, model_out)
    with atomic_path(history_out) as tmp:
        tmp.write_text(json.dumps(info, indent=1))
    return info
