"""Free decoding of every spoken caption with pocketsphinx 5 (bundled en-us acoustic model) and
one LM: `general` (its bundled en-us LM and CMU dictionary) or `caption` (vgs.asr.lm).

Hypotheses: lower-case words normalised like the manifest's transcripts (alternative-pronunciation
marks and fillers dropped, punctuation stripped), written to hypotheses.tsv (utt_id, split,
transcript) in the manifest's order, the layout the text row reads.  An utterance the recogniser
returns nothing for gets an empty hypothesis, and so does one whose audio cannot be read or is
digital silence (not decoded: the recogniser would "hear" a word in it): each counted with its
reason in the report, scored by WER as all deletions, kept downstream as a caption without words.

Each worker process holds one decoder (the general LM takes ~0.3 s to load) and resets its
feature extraction before every utterance (`reinit_feat`): without it the noise and CMN estimates
carry over, and a hypothesis depended on which utterances its worker decoded before."""
import json
import logging
import os
import re
import sys
import time

import pandas as pd
from tqdm import tqdm

from ..cache import write_tsv
from ..corpus.text import normalise as text_normalise
from ..runtime import atomic_path
from ..speech.audio import BadAudioError, load_audio, signal_problem, to_int16
from .lm import read_manifest

log = logging.getLogger(__name__)
_decoder = None


def normalise(hyp):
    """pocketsphinx hypothesis → transcript words: 'on(2)' → 'on', then the caption text policy
    (vgs.corpus.text.normalise: lower case, punctuation stripped, fillers such as <s>, <sil>,
    [NOISE], ++GARBAGE++ dropped), so hypotheses and references are tokenised alike."""
    return text_normalise(" ".join(re.sub(r"\(\d+\)$", "", w) for w in hyp.split()))


def decoder_options(lm, settings, lm_path=None, dict_path=None):
    """pocketsphinx options: the configured search settings; the caption LM and its dictionary."""
    opts = {"samprate": 16000, "logfn": os.devnull, **settings}
    if lm == "caption":
        if not (lm_path and dict_path):
            raise ValueError("the caption LM needs its lm and dictionary files")
        opts.update(lm=str(lm_path), dict=str(dict_path))
    elif lm != "general":
        raise ValueError(f"unknown LM {lm!r}: general | caption")
    return opts


def _init(opts):
    global _decoder
    from pocketsphinx import Decoder

    _decoder = Decoder(**opts)


def decode_one(item):
    """(utt_id, wav) → (utt_id, hypothesis or '', audio seconds, CPU seconds, why it is empty or None)."""
    utt_id, wav = item
    t0 = time.process_time()
    try:
        x, _ = load_audio(wav, 16000)
    except BadAudioError as e:
        return utt_id, "", 0.0, time.process_time() - t0, f"bad_audio: {e.problem}"
    if signal_problem(x) == "silent":
        return utt_id, "", len(x) / 16000, time.process_time() - t0, "silent_audio: not decoded"
    d = _decoder
    d.reinit_feat()
    d.start_utt()
    d.process_raw(to_int16(x).tobytes(), full_utt=True)
    d.end_utt()
    h = d.hyp()
    hyp = normalise(h.hypstr) if h else ""
    return utt_id, hyp, len(x) / 16000, time.process_time() - t0, None if hyp else "no_words_recognised"


def wer_by_split(df):
    """jiwer word error rate (and its parts) of each split and overall: df has split, reference,
    transcript (the hypothesis); empty hypotheses count as deletions."""
    import jiwer

    out = {}
    for name, g in [*df.groupby("split", sort=True), ("all", df)]:
        o = jiwer.process_words(g["reference"].tolist(), g["transcript"].tolist())
        n = o.hits + o.substitutions + o.deletions
        out[name] = {"wer": round(100 * o.wer, 2), "utterances": len(g), "reference_words": int(n),
                     "substitutions": o.substitutions, "deletions": o.deletions, "insertions": o.insertions,
                     "empty_hypotheses": int((g["transcript"] == "").sum())}
    return out


def decode_corpus(utterances_tsv, lm, settings, splits, out_tsv, report_json, threads=1,
                  lm_path=None, dict_path=None):
    """Decode the utterances of `splits`; hypotheses in manifest order, WER per split in the report."""
    t0 = time.time()
    u = read_manifest(utterances_tsv)
    u = u[u["split"].isin(splits)].reset_index(drop=True)
    if u.empty:
        raise ValueError(f"{utterances_tsv}: no utterances in splits {list(splits)}")
    opts = decoder_options(lm, dict(settings), lm_path, dict_path)
    items = list(zip(u["utt_id"], u["wav"]))
    bar = lambda it: tqdm(it, total=len(items), desc=f"asr[{lm}]", mininterval=5, file=sys.stderr)
    if threads <= 1:
        _init(opts)
        results = list(bar(map(decode_one, items)))
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(threads, _init, (opts,)) as pool:
            results = list(bar(pool.imap_unordered(decode_one, items, chunksize=4)))
    res = pd.DataFrame(results, columns=["utt_id", "transcript", "audio_s", "cpu_s", "empty_reason"])
    out = u[["utt_id", "split", "transcript"]].rename(columns={"transcript": "reference"})
    out = out.merge(res, on="utt_id", how="left", validate="one_to_one")
    empty = out[out["empty_reason"].notna()]
    for r in empty.itertuples():
        log.warning("%s: empty hypothesis (%s)", r.utt_id, r.empty_reason)
    write_tsv(out[["utt_id", "split", "transcript"]], out_tsv)
    wall = time.time() - t0
    audio, cpu = float(out["audio_s"].sum()), float(out["cpu_s"].sum())
    report = {"lm": lm, "splits": sorted(set(splits)), "utterances": len(out),
              "wer": wer_by_split(out),
              "empty_hypotheses": int(len(empty)),
              "empty_reasons": empty["empty_reason"].str.split(":").str[0].value_counts().to_dict(),
              "empty": empty[["utt_id", "empty_reason"]].rename(columns={"empty_reason": "reason"}).to_dict("records"),
              "audio_seconds": round(audio, 2), "decoder_cpu_seconds": round(cpu, 2),
              "x_real_time_per_process": round(audio / max(cpu, 1e-9), 2), "wall_seconds": round(wall, 2),
              "threads": threads, "settings": dict(settings)}
    log.info("%s LM: WER %s; %d empty hypotheses; %.0f s audio, %.0f CPU s (%.1f x real time per "
             "process), %.0f s wall", lm, {k: v["wer"] for k, v in report["wer"].items()}, len(empty),
             audio, cpu, report["x_real_time_per_process"], wall)
    with atomic_path(report_json) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report
