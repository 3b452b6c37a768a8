"""Forced-alignment stage: one backend (pocketsphinx | mfa | oracle) → TextGrids, word segments,
and a report (aligned rate, failures with reasons, OOV/G2P counts, speed, boundary error)."""
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..cache import read_json, read_tsv, write_tsv
from ..runtime import atomic_path, shard_slice
from .textgrid import write_textgrid

log = logging.getLogger(__name__)
SEGMENT_COLUMNS = ["utt_id", "index", "word", "start", "end"]
PAPER_ALIGNED_RATE = 0.957


def read_utterances(path):
    # a repeated utt_id (ingest never writes one) would break every HDF5 keyed by it
    return read_tsv(path, ["utt_id", "wav", "transcript"], unique="utt_id")


def oracle_results(utts, truth):
    """Ground-truth word times as if an aligner had produced them (no phones)."""
    by_utt = {k: g.sort_values("index") for k, g in truth.groupby("utt_id")}
    for u in utts:
        g = by_utt.get(u["utt_id"])
        r = {"utt_id": u["utt_id"], "ok": g is not None, "phones": [], "phone_pass": False,
             "duration": float(u.get("duration") or 0.0),
             "reason": None if g is not None else "no_ground_truth: utterance not in the reference word times",
             "words": [] if g is None else list(zip(g.word, g.start.astype(float), g.end.astype(float)))}
        yield r


def boundary_error(segments, truth):
    """Word-boundary error of `segments` against ground truth: every start and end, in ms."""
    m = segments.merge(truth, on=["utt_id", "index"], suffixes=("", "_gt"))
    m = m[m.word == m.word_gt]
    if m.empty:
        return None
    err = 1000 * np.abs(np.concatenate([m.start - m.start_gt, m.end - m.end_gt]))
    return {"words_compared": int(len(m)), "boundaries": int(err.size),
            "mean_ms": round(float(err.mean()), 2), "median_ms": round(float(np.median(err)), 2),
            "within_20ms": round(float((err <= 20).mean()), 4),
            "within_50ms": round(float((err <= 50).mean()), 4)}


def read_truth(truth_tsv):
    return read_tsv(truth_tsv, SEGMENT_COLUMNS, unique=["utt_id", "index"])


def align_corpus(utterances_tsv, aligner, cfg, textgrid_dir, segments_tsv, report_json,
                 threads=1, truth_tsv=None, shard=None):
    """Align the spoken captions (utterances.tsv; or shard `shard`, "i-of-k", of them), scored against
    ground_truth/word_times.tsv if given."""
    df = read_utterances(utterances_tsv)
    truth = read_truth(truth_tsv) if truth_tsv else None
    return align_utterances(df.iloc[shard_slice(len(df), shard)], aligner, cfg, textgrid_dir, segments_tsv,
                            report_json, threads, truth)


def align_utterances(df, aligner, cfg, textgrid_dir, segments_tsv, report_json, threads=1, truth=None):
    """Run `aligner` over every utterance of `df` (utt_id, wav, transcript [, speaker, duration]); failed
    ones are listed in the report, not in segments.  `truth` (utt_id, index, word, start, end): reference
    word times for the boundary error (and what the oracle aligner copies)."""
    t0, c0 = time.time(), time.process_time()
    utts = df.to_dict("records")
    bar = lambda it, total=None: tqdm(it, total=total or len(utts), desc=f"align[{aligner}]",
                                      mininterval=5, file=sys.stderr)
    if not utts:  # an empty shard (more shards than utterances)
        results, lex = [], {}
    elif aligner == "pocketsphinx":
        from . import pocketsphinx_backend

        results, lex = pocketsphinx_backend.run(utts, cfg, threads, bar)
    elif aligner == "mfa":
        from . import mfa_backend

        results, lex = mfa_backend.run(utts, cfg, threads, Path(segments_tsv).parent / "mfa_work")
        results = bar(results)
    elif aligner == "oracle":
        if truth is None:
            raise ValueError("aligner 'oracle' needs ground-truth word times (synthetic corpus only)")
        results, lex = bar(oracle_results(utts, truth)), {}
    else:
        raise ValueError(f"unknown aligner {aligner!r}")

    ref = {u["utt_id"]: u["transcript"].split() for u in utts}
    shutil.rmtree(textgrid_dir, ignore_errors=True)  # a stale directory would block the rename
    rows, failures, audio_s, phone_pass, retried = [], [], 0.0, 0, 0
    with atomic_path(textgrid_dir) as tg_tmp:
        tg_tmp.mkdir(parents=True)
        for r in results:
            audio_s += r["duration"]
            hyp = [w for w, _, _ in r["words"]]
            if r["ok"] and hyp != ref[r["utt_id"]]:  # backends other than pocketsphinx: check here
                r["ok"], r["reason"] = False, (f"word_mismatch: aligned {' '.join(hyp)!r} != "
                                               f"transcript {' '.join(ref[r['utt_id']])!r}")
            if not r["ok"]:
                failures.append({"utt_id": r["utt_id"], "reason": r["reason"]})
                log.warning("alignment failed: %s: %s", r["utt_id"], r["reason"])
                continue
            phone_pass += r["phone_pass"]
            retried += bool(r.get("retries"))
            write_textgrid(tg_tmp / f"{r['utt_id']}.TextGrid", r["words"], r["phones"], r["duration"])
            rows += [(r["utt_id"], i, w, round(s, 4), round(e, 4))
                     for i, (w, s, e) in enumerate(r["words"])]
    seg = pd.DataFrame(rows, columns=SEGMENT_COLUMNS).sort_values(["utt_id", "index"])
    write_tsv(seg, segments_tsv)

    if not audio_s:  # mfa/oracle results carry manifest durations; fall back to them
        audio_s = float(pd.to_numeric(df.get("duration", 0), errors="coerce").fillna(0).sum())
    report = alignment_report(
        aligner, cfg, threads, len(utts), failures, seg, lex, truth, phone_pass_ok=int(phone_pass),
        aligned_after_beam_retry=retried, audio_seconds=audio_s, wall_seconds=time.time() - t0,
        cpu_seconds=time.process_time() - c0, digits=6)
    _write_report(report, report_json)
    return report


def alignment_report(aligner, cfg, threads, n, failures, seg, lex, truth, digits=2, **totals):
    """The stage report from its counts; `totals` are additive (summed over shards, whose reports
    keep 6 digits so that the merged sums round like an unsharded run's)."""
    reasons = pd.Series([f["reason"].split(":")[0] for f in failures], dtype=str).value_counts()
    audio_s, wall = totals["audio_seconds"], totals["wall_seconds"]
    return {
        "aligner": aligner, "utterances": n, "aligned": n - len(failures),
        "aligned_rate": round((n - len(failures)) / max(n, 1), 4),
        "paper_aligned_rate": PAPER_ALIGNED_RATE,
        "failed": len(failures), "failure_reasons": reasons.to_dict(), "failures": failures,
        "words_aligned": len(seg), **{k: round(v, digits) for k, v in totals.items()}, "lexicon": lex,
        "x_real_time": round(audio_s / max(wall, 1e-9), 1), "threads": threads, "settings": cfg,
        "boundary_error_vs_ground_truth": (boundary_error(seg, truth)
                                           if truth is not None and aligner != "oracle" else None),
    }


def _write_report(report, report_json):
    n, audio_s, wall = report["utterances"], report["audio_seconds"], report["wall_seconds"]
    seg_n = report["words_aligned"]
    log.info("aligned %d/%d (%.1f%%), %d words, %.1f s audio in %.1f s (%.1f x real time)",
             report["aligned"], n, 100 * report["aligned_rate"], seg_n, audio_s, wall,
             report["x_real_time"])
    if report["boundary_error_vs_ground_truth"]:
        log.info("boundary error vs ground truth: %s", report["boundary_error_vs_ground_truth"])
    with atomic_path(report_json) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")


def merge_lexicon(parts, vocabulary):
    """One lexicon report from the shards' (each saw only its own transcripts' words), in the
    backend's layout; {} when the backend reports none (oracle)."""
    parts = [p for p in parts if p]  # empty shards and the oracle report none
    if not parts:
        return {}
    lists = [k for k in ("oov_from_cmudict", "oov_from_g2p", "oov_unpronounceable") if k in parts[0]]
    union = {k: sorted(set().union(*(p[k] for p in parts))) for k in lists}
    lex = {"vocabulary": vocabulary}
    if "oov_counts" in parts[0]:  # pocketsphinx
        lex["oov_words"] = len(set().union(*union.values()))
        lex["oov_counts"] = {"cmudict": len(union["oov_from_cmudict"]), "g2p": len(union["oov_from_g2p"])}
    lex.update(union)
    if "g2p_pronunciations" in parts[0]:
        lex["g2p_pronunciations"] = dict(sorted(
            {w: v for p in parts for w, v in p["g2p_pronunciations"].items()}.items()))
    return lex


def merge_alignments(shard_dirs, shard_segments, shard_reports, utterances_tsv, textgrid_dir,
                     segments_tsv, report_json, truth_tsv=None):
    """The stage's outputs from its shards' (align_corpus with shard=...), identical to one
    unsharded run's: TextGrids moved together, segments concatenated in shard (= manifest) order,
    counts summed, lexicon and boundary error recomputed over all utterances."""
    parts = [read_json(p, ["aligner", "settings", "threads", "utterances", "failures", "lexicon"]) for p in shard_reports]
    shutil.rmtree(textgrid_dir, ignore_errors=True)
    with atomic_path(textgrid_dir) as tg_tmp:
        tg_tmp.mkdir(parents=True)
        for d in shard_dirs:
            for f in sorted(Path(d).iterdir()):
                shutil.copy2(f, tg_tmp / f.name)
    seg = pd.concat([read_tsv(p, SEGMENT_COLUMNS) for p in shard_segments]).sort_values(["utt_id", "index"])
    write_tsv(seg, segments_tsv)
    vocab = {w for t in read_utterances(utterances_tsv).transcript for w in t.split()}
    lex = merge_lexicon([p["lexicon"] for p in parts], len(vocab))
    totals = {k: sum(p[k] for p in parts) for k in ("phone_pass_ok", "aligned_after_beam_retry",
                                                     "audio_seconds", "wall_seconds", "cpu_seconds")}
    first = parts[0]
    report = alignment_report(first["aligner"], first["settings"], first["threads"],
                              sum(p["utterances"] for p in parts), [f for p in parts for f in p["failures"]],
                              seg, lex, read_truth(truth_tsv) if truth_tsv else None, **totals)
    report["shards"] = len(parts)
    _write_report(report, report_json)
    return report
