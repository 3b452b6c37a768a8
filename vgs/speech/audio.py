"""Audio loading for every speech stage: mono float32 at the target rate, or a named error."""
import logging
import os
import struct

import numpy as np
import soundfile as sf

from ..runtime import path_problem

log = logging.getLogger(__name__)
SILENT_PEAK = 1e-4     # peak below -80 dBFS (about 3 int16 steps): no speech to align
CLIP_LEVEL = 0.999     # |sample| at full scale ...
CLIP_FRACTION = 1e-3   # ... in more than 0.1% of samples: the recording was clipped


class BadAudioError(ValueError):
    """An audio file that cannot be used (empty, unreadable, truncated); names file and problem."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


def wav_truncation(path):
    """For RIFF/WAVE files: bytes the header promises in 'data' minus bytes present (>0: cut short)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        size = os.fstat(fh.fileno()).st_size
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return 0
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                # 0xFFFFFFFF / 0 are "unknown length" markers written by streaming tools
                return 0 if clen in (0, 0xFFFFFFFF) else clen - (size - fh.tell())
            fh.seek(clen + (clen & 1), 1)


def file_problem(path):
    """Why the file at `path` cannot be audio (missing, not a readable file, empty, cut short), or
    None.  Checked before decoding: libsndfile quietly reads a cut-short WAV as a shorter one."""
    problem = path_problem(path, "audio file")
    if problem:
        return problem
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        short = wav_truncation(path)
    except OSError as e:  # read errors after the first byte (a failing disk)
        return f"cannot read the audio file: {type(e).__name__}: {e.strerror or e}"
    return f"truncated: WAV header promises {short} more bytes of audio" if short > 0 else None


def nonfinite_problem(x):
    """'N non-finite samples ...' when float audio holds NaN or ±inf (one such sample turns the whole
    utterance's normalised features into NaN), else None."""
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    return f"{bad} non-finite samples (NaN or ±inf) in float audio" if bad else None


def load_audio(path, sample_rate=16000):
    """Read `path` as mono float32 in [-1, 1] at `sample_rate`.

    Returns (samples, info) with info = {"resampled": bool, "downmixed": bool, "source_rate": int,
    "channels": int}
    so callers can count conversions.  Raises BadAudioError for empty, unreadable or truncated files
    (the paper's unalignable utterances were mostly "empty or cut short") and for NaN/inf samples."""
    problem = file_problem(path)
    if problem:
        raise BadAudioError(path, problem)
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile error types vary between versions
        raise BadAudioError(path, f"unreadable audio ({e})") from e
    if x.shape[0] == 0:
        raise BadAudioError(path, "no audio samples")
    problem = nonfinite_problem(x)
    if problem:
        raise BadAudioError(path, problem)
    info = {"resampled": sr != sample_rate, "downmixed": x.shape[1] > 1, "source_rate": int(sr),
            "channels": int(x.shape[1])}
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if sr != sample_rate:
        import torch
        import torchaudio.functional as AF

        x = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), sr, sample_rate).numpy()
    return np.ascontiguousarray(x, dtype=np.float32), info


def signal_problem(x):
    """'silent' or 'clipped' for audio a human would reject by ear, else None (x: float in [-1, 1])."""
    a = np.abs(x)
    if a.max(initial=0.0) < SILENT_PEAK:
        return "silent"
    if (a >= CLIP_LEVEL).mean() > CLIP_FRACTION:
        return "clipped"
    return None


def to_int16(x):
    """float [-1, 1] → int16 PCM (what pocketsphinx consumes)."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def voiced_seconds(x, sr, below_peak_db=35.0, floor_db=-80.0):
    """Seconds of speech in `x` by an energy VAD: 25 ms frames every 10 ms, DC removed, voiced when
    within `below_peak_db` of the loud frames (99th percentile, so a click does not set the level)
    and above `floor_db` dBFS."""
    n, hop = max(1, int(0.025 * sr)), max(1, int(0.010 * sr))
    if len(x) < n:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n)[::hop]
    db = 10 * np.log10(frames.var(axis=1) + 1e-12)
    voiced = (db > np.percentile(db, 99) - below_peak_db) & (db > floor_db)
    return float(voiced.sum() * hop / sr)


def plausibility_problem(x, sr, n_words, cfg):
    """Why a recording of `n_words` words cannot be what it claims, measured, or None: a sample
    rate outside cfg['sample_rate'] [lo, hi] Hz, a constant signal (DC only) or digital silence,
    a speaking rate outside cfg['words_per_second'] [lo, hi] (words per second of voiced audio)."""
    lo, hi = cfg["sample_rate"]
    if not lo <= sr <= hi:
        return f"sample rate {sr} Hz outside {lo}-{hi} Hz"
    x = np.asarray(x, np.float32)
    if x.ndim > 1:
        x = x.mean(axis=1)
    peak = float(np.abs(x).max(initial=0.0))
    if peak < SILENT_PEAK:
        return f"silent: peak {20 * np.log10(max(peak, 1e-10)):.0f} dBFS (below {20 * np.log10(SILENT_PEAK):.0f})"
    if float(x.max() - x.min()) < SILENT_PEAK:
        return f"constant signal: every sample {float(x.mean()):.4f} (DC only, no sound)"
    voiced = voiced_seconds(x, sr)
    lo, hi = cfg["words_per_second"]
    rate = n_words / max(voiced, 1e-9)
    if not lo <= rate <= hi:
        return (f"speaking rate {rate:.2f} words/s outside {lo:g}-{hi:g}: {n_words} words in "
                f"{voiced:.2f} s of voiced audio ({len(x) / sr:.2f} s recorded)")
    return None
