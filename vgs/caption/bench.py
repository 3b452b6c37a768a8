"""Scale check of matchmap scoring: all images x all captions through `chunked_similarity` (blocks
within a memory budget) next to the bare GEMM of the same size in the same blocks, and the peak
extra memory; plus every default system's training/inference speed, from its metrics row."""
import json
import logging
import resource
import time

import numpy as np
import torch

from ..cache import read_json
from ..runtime import atomic_path
from .scoring import block_sizes, chunked_similarity

log = logging.getLogger(__name__)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def scoring_benchmark(images=1000, captions=5000, cells=196, frames=16, dim=128, similarity="misa",
                      mem_mb=512, seed=0):
    """Every caption has `frames` frames, so ours and the bare GEMM do exactly the same products."""
    g = torch.Generator().manual_seed(seed)
    I = torch.randn(images, cells, dim, generator=g)
    A = torch.randn(captions * frames, dim, generator=g).numpy()
    offsets = np.arange(captions + 1) * frames
    bi, bc = block_sizes(similarity, images, cells, captions, frames, mem_mb)
    rss0 = _peak_rss_mb()
    t0 = time.perf_counter()
    S = chunked_similarity(similarity, I, A, offsets, mem_mb=mem_mb)
    t_ours = time.perf_counter() - t0
    extra_mb = max(0.0, _peak_rss_mb() - rss0)
    At = torch.from_numpy(A)
    If = I.reshape(-1, dim)
    t0 = time.perf_counter()
    for c0 in range(0, captions, bc):
        a = At[c0 * frames:(c0 + bc) * frames]
        for k0 in range(0, images, bi):
            torch.einsum("nd,td->nt", If[k0 * cells:(k0 + bi) * cells], a)
    t_gemm = time.perf_counter() - t0
    flops = 2.0 * images * cells * captions * frames * dim
    res = {"images": images, "captions": captions, "cells": cells, "frames": frames, "dim": dim,
           "similarity": similarity, "mem_mb_budget": mem_mb, "block": [bi, bc],
           "block_matchmap_mb": bi * bc * cells * frames * 4 / 2**20, "scoring_s": t_ours, "einsum_s": t_gemm,
           "scoring_over_einsum": t_ours / max(t_gemm, 1e-9), "gflops_einsum": flops / max(t_gemm, 1e-9) / 1e9,
           "peak_extra_rss_mb": extra_mb, "score_matrix_mb": S.numel() * 4 / 2**20,
           "threads": torch.get_num_threads()}
    log.info("scoring benchmark: %s", res)
    return res


def system_speed(metric_files):
    """Per system (trained rows): train wall/CPU s, train captions/s (forward + backward), inference
    captions/s (test split), from the metrics rows the evaluate rule wrote."""
    out = []
    for p in metric_files:
        row = read_json(p, ["training", "timing", "system", "label"])
        tr, tm = row["training"], row["timing"]
        out.append({"system": row["system"], "label": row["label"],
                    "train_wall_s": float(np.mean([t["train_wall_s"] for t in tm])),
                    "train_cpu_s": float(np.mean([t.get("epochs_cpu_s") or t["train_cpu_s"] for t in tm])),  # all epochs
                    "train_captions_per_s": float(np.mean([t["train_captions_per_s"] for t in tm])),
                    "train_captions_per_cpu_s": float(np.mean([t.get("train_captions_per_cpu_s") or np.nan for t in tm])),
                    "infer_captions_per_s": float(np.mean([t["infer_captions_per_s"] for t in tm])),
                    "infer_captions_per_cpu_s": float(np.mean([t["infer_captions_per_cpu_s"] for t in tm])),
                    "test_scoring_s": float(np.mean([t["score_s"] for t in tm])),
                    "params": tr[0]["params"], "device": tr[0]["device"], "seeds": len(tr)})
    return out


def markdown(res, speed):
    lines = ["# Caption models: speed", "", "Per system (mean over seeds; wall seconds are inflated on a shared "
             "machine, CPU seconds count every thread):", "",
             "| System | Train wall s | Train CPU s | Train captions/s (fwd+bwd) | per CPU s | Inference captions/s | "
             "per CPU s | Test scoring s | Audio params | Device |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in speed:
        lines.append(f"| {s['label']} | {s['train_wall_s']:.0f} | {s['train_cpu_s']:.0f} | "
                     f"{s['train_captions_per_s']:.1f} | {s['train_captions_per_cpu_s']:.1f} | "
                     f"{s['infer_captions_per_s']:.1f} | {s['infer_captions_per_cpu_s']:.1f} | {s['test_scoring_s']:.2f} | "
                     f"{s['params']['audio']:,} | {s['device']} |")
    r = res
    lines += ["", f"Matchmap scoring ({r['similarity']}) of {r['images']} images x {r['captions']} captions "
              f"({r['cells']} cells, {r['frames']} frames, dim {r['dim']}, {r['threads']} threads): "
              f"{r['scoring_s']:.2f} s vs bare einsum of the same size in the same blocks {r['einsum_s']:.2f} s "
              f"(ratio {r['scoring_over_einsum']:.2f}); blocks of {r['block'][0]} images x {r['block'][1]} captions "
              f"({r['block_matchmap_mb']:.0f} MB matchmap, budget {r['mem_mb_budget']} MB); peak extra memory "
              f"{r['peak_extra_rss_mb']:.0f} MB (score matrix itself {r['score_matrix_mb']:.0f} MB)."]
    return "\n".join(lines) + "\n"


def write_benchmark(bench_cfg, mem_mb, metric_files, json_out, md_out):
    res = scoring_benchmark(**bench_cfg, mem_mb=mem_mb)
    speed = system_speed(metric_files)
    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps({"scoring": res, "systems": speed}, indent=1))
    with atomic_path(md_out) as tmp:
        tmp.write_text(markdown(res, speed))
    return res, speed
