"""Audio loading for every speech stage: mono float32 at the target rate, or a named error."""
import logging
import os
import struct

import numpy as np
import soundfile as sf

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
    """Why the file at `path` cannot be audio (missing, empty, cut short), or None.  Checked before
    decoding: libsndfile quietly reads a cut-short WAV as a shorter one."""
    if not os.path.isfile(path):
        return "missing audio file: the path does not exist"
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    short = wav_truncation(path)
    return f"truncated: WAV header promises {short} more bytes of audio" if short > 0 else None


def nonfinite_problem(x):
    """'N non-finite samples ...' when float audio holds NaN or ±inf (one such sample turns the whole
    utterance's normalised features into NaN), else None."""
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    return f"{bad} non-finite samples (NaN or ±inf) in float audio" if bad else None


def load_audio(path, sample_rate=16000):
    """Read `path` as mono float32 in [-1, 1] at `sample_rate`.

    Returns (samples, info) with info = {"resampled": bool, "downmixed": bool, "source_rate": int}
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
    info = {"resampled": sr != sample_rate, "downmixed": x.shape[1] > 1, "source_rate": int(sr)}
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
