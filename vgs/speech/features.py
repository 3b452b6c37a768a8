"""Log-mel filterbank features (Kaldi-compatible), normalised per utterance, cached in HDF5.

Features: torchaudio.compliance.kaldi.fbank on 16 kHz audio scaled to the int16 range (as Kaldi
reads it), 40 mel bins, 25 ms Povey window, 10 ms shift, log energies, Kaldi's dither (Gaussian noise of
`dither` int16 steps added to the samples; seeded from the utterance id, so reproducible) — without
it digital silence (synthetic speech) gives log(float eps) = -15.9 and dominates the statistics;
snip_edges=False so frame i covers [10·i, 10·i + 10) ms centred (T = round(samples / 160)) and a
word at [start, end) s is frames [round(100·start), round(100·end)).

Normalisation (the paper: "subtract the mean value and then apply variance normalization to the
entire spectrogram"), applied to each utterance's whole T×40 log-mel matrix:
  spectrogram: one mean and one standard deviation over all T·40 values (default; the paper's text)
  per_bin:     mean and standard deviation of each of the 40 bins over the T frames (Kaldi CMVN)
  none:        raw log energies
so 0 is the utterance's mean energy — the value zero padding of a word window takes.

HDF5 layout (fbank.h5): group `feats` with one float32 dataset (T, 40) per utterance, named by
utt_id, attrs `duration`, `source_rate`, `channels`, `resampled`, `signal` ('', 'clipped' or
'silent'); a string dataset `skips`, one JSON record (utt_id, path, problem) per utterance without
features, in manifest order;
file attrs record the parameters, `dim` and `frame_shift_ms`.  It is built in `<out>.partial`
(each dataset marked `done` once written, with its wav's path, size and mtime in `source`; the file
flushed every FLUSH_EVERY utterances), so a killed run resumes where it stopped, keeping only
utterances still listed with the same wav, and renamed onto `<out>` when complete.  The report is
computed from the finished file alone, so a resumed run, a merge of shards and one uninterrupted
run report the same (apart from `wall_seconds`, `x_real_time`, `reused_from_partial_run` and the
file's bytes).  The same writer stores self-supervised features (ssl.h5, vgs.speech.ssl): a
featurizer object computes the frames, this module does the rest."""
import json
import logging
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
from tqdm import tqdm

from ..cache import read_json
from ..runtime import atomic_path, file_signature, open_h5, open_partial
from .audio import BadAudioError, load_audio, signal_problem

log = logging.getLogger(__name__)
FLUSH_EVERY = 200  # utterances between flushes of the partial file (what a kill can lose)


class Fbank:
    """The log-mel featurizer: frames of one utterance, and what the writer needs to know."""

    parallel = True  # thread-safe: extract_features runs `threads` of these at once
    what = "log-mel features"

    def __init__(self, cfg):
        import torchaudio.compliance.kaldi  # noqa: F401  imported here, once: a first import from
        # several worker threads at once fails (partially initialised torchaudio.functional)
        self.cfg, self.sample_rate = cfg, cfg["sample_rate"]
        self.min_seconds, self.frame_shift_ms = cfg["frame_length_ms"] / 1000, cfg["frame_shift_ms"]
        self.layout = f"feats/<utt_id>: (T, num_mel_bins) float32; frame i centred at {cfg['frame_shift_ms']:g}*(i+0.5) ms"

    def __call__(self, x, key):
        return fbank(x, self.cfg, key)


def fbank(x, cfg, key=""):
    """(samples,) float32 in [-1, 1] at cfg['sample_rate'] → (T, num_mel_bins) float32 log-mel.

    `key` (the utterance id) seeds the dither noise."""
    import torch
    from torchaudio.compliance import kaldi

    wav = np.asarray(x, dtype=np.float64) * 32768.0
    if cfg["dither"] > 0:  # our own seeded dither: torch's global RNG is shared between threads
        rng = np.random.default_rng(zlib.crc32(str(key).encode()))
        wav = wav + cfg["dither"] * rng.standard_normal(len(wav))
    # float32, as Kaldi: bins ~1e-7 below a frame's peak energy carry round-off of up to 0.05 log
    # units (checked against kaldi-native-fbank, tests/test_fbank_reference.py; dither hides them)
    f = kaldi.fbank(torch.from_numpy(wav.astype(np.float32))[None],
                    num_mel_bins=cfg["num_mel_bins"], frame_length=cfg["frame_length_ms"],
                    frame_shift=cfg["frame_shift_ms"], dither=0.0, snip_edges=False,
                    sample_frequency=cfg["sample_rate"])
    return normalise(f.numpy(), cfg["normalise"])


def normalise(f, mode):
    """Per-utterance mean and variance normalisation (see module doc for the modes)."""
    if mode == "none":
        return f.astype(np.float32)
    axis = None if mode == "spectrogram" else 0
    if mode not in ("spectrogram", "per_bin"):
        raise ValueError(f"unknown normalisation {mode!r}")
    mu, sd = f.mean(axis=axis, keepdims=True), f.std(axis=axis, keepdims=True)
    return ((f - mu) / np.maximum(sd, 1e-5)).astype(np.float32)


def _compute(item, feat):
    key, path = item
    try:
        x, info = load_audio(path, feat.sample_rate)
    except BadAudioError as e:
        return key, None, {"problem": e.problem, "path": str(path)}
    if len(x) < feat.sample_rate * feat.min_seconds:
        return key, None, {"problem": f"shorter than one {1000 * feat.min_seconds:g} ms frame",
                           "path": str(path)}
    f = feat(x, key)
    if not np.isfinite(f).all():  # finite float samples far beyond ±1 (e.g. 1e20) overflow float32
        return key, None, {"problem": f"{feat.what} not finite (peak |sample| {np.abs(x).max():.3g})",
                           "path": str(path)}
    return key, f, {**info, "duration": len(x) / feat.sample_rate, "signal": signal_problem(x)}


def extract_features(items, cfg, out_h5, report_json, threads=1, ark=None, scp=None, desc="fbank",
                     featurizer=None):
    """Features for `items` [(utt_id, wav_path)] into `out_h5` (resumable) and optionally a Kaldi
    ark/scp pair.  Bad audio is a counted, logged skip listed in the report.  `featurizer`: what
    computes the frames (default: Fbank(cfg)); `cfg` is recorded and a partial file made with
    another cfg is started afresh."""
    import torch

    feat = featurizer or Fbank(cfg)
    workers = max(1, threads) if feat.parallel else 1  # else the featurizer uses torch's threads
    torch.set_num_threads(1 if feat.parallel else max(1, threads))
    t0 = time.time()
    partial = f"{out_h5}.partial"
    sig = json.dumps(cfg, sort_keys=True)
    skipped, reused = [], 0
    sources = {key: file_signature(path) for key, path in items}
    with open_partial(partial) as h5:
        if h5.attrs.get("params") != sig:  # parameters changed since the partial run: start over
            for k in list(h5.keys()):
                del h5[k]
            h5.attrs["params"] = sig
        g = h5.require_group("feats")
        stale = [k for k in g if not g[k].attrs.get("done", False) or g[k].attrs.get("source") != sources.get(k)
                 or "signal" not in g[k].attrs]  # (an older partial file without the signal record)
        for k in stale:  # written by a run that died mid-dataset; or no longer listed, or the wav changed
            del g[k]
        if stale:
            log.info("%s: %d stored utterances dropped (unfinished, no longer listed or changed)", partial, len(stale))
        done = set(g.keys())
        reused = len(done)
        todo = [it for it in items if it[0] not in done]
        with ThreadPoolExecutor(workers) as pool:  # soundfile and torch release the GIL
            for n, (key, f, info) in enumerate(tqdm(pool.map(lambda it: _compute(it, feat), todo),
                                                    total=len(todo), desc=desc, mininterval=5)):
                if n % FLUSH_EVERY == FLUSH_EVERY - 1:
                    h5.flush()
                if f is None:
                    skipped.append({"utt_id": key, **info})
                    log.warning("skipped %s: %s: %s", key, info["path"], info["problem"])
                    continue
                if info["signal"]:
                    log.warning("%s: %s audio (features kept)", key, info["signal"])
                ds = g.create_dataset(key, data=f)
                ds.attrs.update(duration=info["duration"], source_rate=info["source_rate"], source=sources[key],
                                channels=info["channels"], resampled=info["resampled"],
                                signal=info["signal"] or "")
                ds.attrs["done"] = True
        _write_skips(h5, skipped)
        for k, v in cfg.items():
            h5.attrs[k] = v
        h5.attrs["layout"] = feat.layout
        h5.attrs["frame_shift_ms"] = feat.frame_shift_ms
        dims = {g[k].shape[1] for k in g}
        if len(dims) > 1:
            raise ValueError(f"{partial}: utterances with different feature dimensions {sorted(dims)}")
        h5.attrs["dim"] = dims.pop() if dims else 0  # 0: no utterance (an empty shard)
    os.replace(partial, out_h5)
    return _finish(reused, cfg, out_h5, report_json, ark, scp, time.time() - t0)


def _write_skips(h5, skips):
    """The utterances without features: one JSON record (utt_id, path, problem) per row."""
    if "skips" in h5:
        del h5["skips"]
    h5.create_dataset("skips", data=np.array([json.dumps(s) for s in skips], dtype=object),
                      dtype=h5py.string_dtype(), shape=(len(skips),))


def _read_skips(h5):
    return [json.loads(s) for s in h5["skips"][()]] if "skips" in h5 else []


def _finish(reused, cfg, out_h5, report_json, ark, scp, wall):
    """Kaldi copy and report of a finished feature file: every count from what the file holds
    (`reused`, the utterances a resumed run kept, and `wall` describe this run only)."""
    if ark:
        write_kaldi(out_h5, ark, scp)
    with open_h5(out_h5) as h5:
        g = h5["feats"]
        attrs = {k: dict(g[k].attrs) for k in g}
        frames = sum(g[k].shape[0] for k in g)
        skips = _read_skips(h5)
    n_stored, audio_s = len(attrs), sum(a["duration"] for a in attrs.values())
    signal = {s: sorted(k for k, a in attrs.items() if a.get("signal") == s) for s in ("clipped", "silent")}
    n_res = sum(bool(a.get("resampled")) for a in attrs.values())
    n_mix = sum(int(a.get("channels", 1)) > 1 for a in attrs.values())
    if n_res or n_mix:
        log.info("converted audio: %d resampled, %d downmixed to mono", n_res, n_mix)
    report = {"utterances": n_stored + len(skips), "stored": n_stored,
              "reused_from_partial_run": reused,
              "skipped": len(skips), "skips": skips, "resampled": n_res,
              "downmixed": n_mix, "clipped": len(signal["clipped"]),
              "clipped_utterances": signal["clipped"], "silent": len(signal["silent"]),
              "silent_utterances": signal["silent"],
              "frames": frames, "audio_seconds": round(float(audio_s), 2), "wall_seconds": round(wall, 2),
              "x_real_time": round(float(audio_s) / max(wall, 1e-9), 1),
              "h5_bytes": os.path.getsize(out_h5),
              "ark_bytes": os.path.getsize(ark) if ark else None, "settings": cfg}
    log.info("%d utterances, %d frames, %.0f s audio in %.1f s (%.0f x real time), %d skipped, "
             "h5 %.1f MB", n_stored, frames, audio_s, wall, report["x_real_time"], report["skipped"],
             report["h5_bytes"] / 1e6)
    with atomic_path(report_json) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report


def merge_features(shard_h5s, shard_reports, out_h5, report_json, ark=None, scp=None):
    """One feature file (+ Kaldi ark/scp and report) from the shards' (extract_features on
    consecutive slices of the items): the same datasets, attributes and report as one run."""
    import h5py

    parts = [read_json(p, ["settings", "reused_from_partial_run", "wall_seconds"]) for p in shard_reports]
    skips = []
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as dst:
        g = dst.create_group("feats")
        for i, path in enumerate(shard_h5s):
            with open_h5(path) as src:
                if i == 0:
                    dst.attrs.update(dict(src.attrs))
                dst.attrs["dim"] = max(int(dst.attrs["dim"]), int(src.attrs["dim"]))  # an empty shard says 0
                for k in src["feats"]:
                    src.copy(src["feats"][k], g, name=k)
                skips += _read_skips(src)
        _write_skips(dst, skips)
    return _finish(sum(p["reused_from_partial_run"] for p in parts), parts[0]["settings"], out_h5,
                   report_json, ark, scp, sum(p["wall_seconds"] for p in parts))


def write_kaldi(h5_path, ark, scp):
    """The same features as a Kaldi binary ark and its scp (offsets into the final ark path)."""
    os.environ.setdefault("KALDI_ROOT", os.devnull)  # kaldi_io warns without it; no binaries needed
    import kaldi_io

    with open_h5(h5_path) as h5, atomic_path(ark) as ark_tmp, atomic_path(scp) as scp_tmp:
        with open(ark_tmp, "wb") as fa, open(scp_tmp, "w") as fs:
            for key in sorted(h5["feats"]):
                pos = fa.tell()
                kaldi_io.write_mat(fa, h5["feats"][key][()], key=key)
                fs.write(f"{key} {ark}:{pos + len(key.encode()) + 1}\n")


def load_feats(h5_path):
    """{utt_id: (T, D) array} from a features HDF5 (reads everything: small corpora, tests)."""
    with open_h5(h5_path) as h5:
        return {k: h5["feats"][k][()] for k in h5["feats"]}
