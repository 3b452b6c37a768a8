"""A harder generated corpus: reverberation and additive noise on the spoken captions, audio only.

Options `synthetic.reverb` and `synthetic.noise` (null = clean, the default).  Every utterance keeps
its length and its ground-truth word times (the direct path arrives at t = 0, the reverberant tail is
cut at the original end), so every score against ground truth stays valid.  Each utterance is
degraded from its own random stream (seed, utterance index): the result does not depend on workers.

- reverb: convolution with a synthetic room impulse response — a unit direct path followed by a
  Gaussian tail decaying 60 dB in `rt60_s` seconds, scaled to a direct-to-reverberant energy ratio of
  `drr_db` (each drawn per utterance from its [lo, hi] range).  Not sox's reverb: one FFT
  convolution, deterministic, with RT60 and DRR as the physical parameters.
- noise at an SNR drawn from `snr_db` [lo, hi], relative to the mean power of the speech's non-zero
  samples (espeak renders pauses and closures as exact zeros, which would otherwise lower it):
  `babble` = the sum of `babble_talkers` other captions of the corpus, each from a random offset and
  looped; `stationary` = Gaussian noise with a random spectral slope between white and brown
  (0 to -6 dB/octave); `mixed` = one of the two per utterance, at random.
The result is scaled down only if it would clip."""
import numpy as np
from scipy.signal import fftconvolve

NOISE_TYPES = ("babble", "stationary", "mixed")


def room_impulse(rng, sr, rt60, drr_db):
    n = max(2, int(rt60 * sr))
    t = np.arange(1, n) / sr
    tail = rng.standard_normal(n - 1) * np.exp(-6.91 * t / rt60)  # 60 dB = e^-6.91 in amplitude
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))  # direct path has energy 1
    return np.concatenate([[1.0], tail])


def coloured_noise(rng, n, slope_db_per_octave):
    """Gaussian noise whose power falls `slope` dB per octave (0 white, -3 pink, -6 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = f[1] if len(f) > 1 else 1.0
    return np.fft.irfft(spec * f ** (slope_db_per_octave / (20 * np.log10(2))), n)


def babble(rng, n, others):
    """Sum of the given clean utterances, each started at a random offset and looped to length n."""
    out = np.zeros(n)
    for o in others:
        o = np.asarray(o, dtype=float)
        out += np.resize(np.roll(o, -int(rng.integers(len(o)))), n)
    return out


def speech_power(x):
    active = x[x != 0]
    return float(np.mean(active ** 2)) if len(active) else 0.0


def degrade(x, sr, rng, reverb=None, noise=None, others=None):
    """Reverberant and/or noisy version of clean float speech `x` (same length).

    others: the clean audio of `noise['babble_talkers']` other utterances (babble only)."""
    y = np.asarray(x, dtype=float)
    power = speech_power(y)  # of the dry speech: reverb does not change the SNR's reference
    if reverb:
        h = room_impulse(rng, sr, rng.uniform(*reverb["rt60_s"]), rng.uniform(*reverb["drr_db"]))
        y = fftconvolve(y, h)[:len(y)]
    if noise and power > 0:
        kind = noise["type"] if noise["type"] != "mixed" else ("babble", "stationary")[rng.integers(2)]
        if kind == "babble":
            n = babble(rng, len(y), others)
        else:
            n = coloured_noise(rng, len(y), rng.uniform(-6.0, 0.0))
        snr = rng.uniform(*noise["snr_db"])
        y = y + n * np.sqrt(power / max(np.mean(n ** 2), 1e-20) / 10 ** (snr / 10))
    peak = np.abs(y).max(initial=0.0)
    return (y / peak * 0.99 if peak > 0.99 else y).astype(np.float32)
