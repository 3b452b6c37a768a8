"""Offline sentence synthesis with ground-truth word times (espeak-ng through ctypes).

How the word times are obtained
-------------------------------
The whole sentence is spoken in one espeak-ng call (never concatenated words: in-sentence words
are much shorter than isolated ones).  libespeak-ng reports a PHONEME event, with its sample
position, where each phoneme starts; the text goes in as SSML with `<mark name="i"/>` before the
i-th word, so MARK events show roughly which word each phoneme belongs to.  Neither espeak's WORD
events nor the marks are reliable alone: multi-word dictionary entries ("on the", "in the", "of
a") are spoken as one unit, so the mark of the second word arrives after both, and accents that
drop an h ("a 'orse") shift every later mark by one word.  So each spoken phoneme is attributed
to a word by aligning (Needleman-Wunsch) the spoken phoneme names with the concatenation of each
word's own dictionary phonemes (espeak_TextToPhonemes, per accent, cached); weak forms and
accent vowels substitute cheaply; unmatched phonemes join a neighbour (glottal/linking onsets the
next word, others the word whose mark they follow).  Marks are the fallback if alignment fails.

A word spans from the start of its first phoneme to the start of the phoneme after its last one
(the next word's first phoneme or a pause), so pauses belong to no word.  espeak renders stop
closures as exact zeros and puts a word-initial stop's closure at the end of the previous word;
runs of digital silence at word edges are cut off, and the closure before a stop-initial word is
given to that word (TIMIT convention); other inter-word silence belongs to no word.  Against
pocketsphinx forced alignment (frame centres) on 200 captions by 20 voices: median |boundary
difference| 11 ms, 73% within 20 ms, 93% within 50 ms, bias < 5 ms (the large differences are
mostly pocketsphinx errors on synthetic speech, e.g. h-dropped words, sentence-final releases).

Every utterance is a pure function of (text, voice, sample_rate): see vgs.synth.espeak.
The 22050 Hz output is resampled to `sample_rate` with a polyphase anti-aliasing FIR
(scipy.signal.resample_poly, filter designed once), and 50 ms of silence is added at both ends.
The audio contains exact zeros (closures, padding): add noise or floor log energies downstream.
"""
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

import numpy as np

from vgs.synth import espeak

# Human-sounding variants shipped with espeak-ng (voices/!v); many others are effects (whisper,
# croak, robots).  Accent x variant x rate x pitch make the voice identities.
DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SILENCE_RUN = 44  # samples (2 ms at 22050 Hz) of |x| <= 2 that count as digital silence
MAX_CLOSURE = 1764  # samples (80 ms): longer silence before a stop is partly a pause
PAD_S = 0.05  # silence added at both ends: espeak starts vowels at sample 0, stops at the last one


@dataclass(frozen=True)
class Voice:
    name: str   # espeak-ng voice+variant, e.g. "en-us+f3"
    rate: int   # words per minute
    pitch: int  # 0-99

    @property
    def speaker_id(self) -> str:
        """Filesystem-safe unique id, e.g. 'en-us_f3_r160_p40'."""
        base = re.sub(r"[^A-Za-z0-9-]+", "_", self.name)
        return f"{base}_r{self.rate}_p{self.pitch}"


@lru_cache(maxsize=None)
def english_accents() -> tuple[str, ...]:
    """Names of the installed English espeak-ng voices (e.g. 'en', 'en-us', 'en-gb-scotland').

    MBROLA voices ('mb/...') are kept only if the mbrola binary is installed and speaks."""
    with espeak.session() as es:
        found = sorted({ident for ident, lang in es.list_voices() if lang.startswith("en")})
    accents = []
    for ident in found:
        if ident.startswith("mb/"):
            if shutil.which("mbrola") is None:
                continue
            name = ident.split("/", 1)[1]
        else:
            name = ident.split("/", 1)[-1].lower()
        try:
            with espeak.session() as es:
                wav, _ = es.synth("test", name, 170, 50)
        except (ValueError, RuntimeError):
            continue
        if len(wav) and np.abs(wav).max() > 0:
            accents.append(name)
    if not accents:
        raise RuntimeError("espeak-ng lists no working English voice (`espeak-ng --voices=en`)")
    return tuple(accents)


def voice_pool(n: int, rate: tuple[int, int], pitch: tuple[int, int], seed: int,
               exclude: set[str] = frozenset(), variants=DEFAULT_VARIANTS,
               accents=None) -> list[Voice]:
    """`n` distinct voices (by speaker_id, none in `exclude`), deterministic for `seed`.

    Accent x variant combinations are visited so that the first voices all differ in accent and
    in variant (a Latin-square walk); every combination is used once before any repeats (with
    another rate/pitch).  rate and pitch are drawn uniformly from the inclusive ranges."""
    accents = sorted(accents or english_accents())
    variants = list(variants)
    (r0, r1), (p0, p1) = rate, pitch
    if not (80 <= r0 <= r1 <= 450 and 0 <= p0 <= p1 <= 99):
        raise ValueError(f"rate {rate} must lie in 80..450 wpm and pitch {pitch} in 0..99")
    capacity = len(accents) * len(variants) * (r1 - r0 + 1) * (p1 - p0 + 1) - len(exclude)
    if n > capacity:
        raise ValueError(f"cannot draw {n} distinct voices: only {capacity} exist")
    rng = np.random.default_rng(seed)
    pool, seen = [], set(exclude)
    for _ in range(1000):
        if len(pool) == n:
            return pool
        acc = [accents[i] for i in rng.permutation(len(accents))]
        var = [variants[i] for i in rng.permutation(len(variants))]
        for k in range(len(variants)):  # one round: every accent once, each with another variant
            for j, a in enumerate(acc):
                v = Voice(f"{a}+{var[(j + k) % len(var)]}", int(rng.integers(r0, r1 + 1)),
                          int(rng.integers(p0, p1 + 1)))
                if v.speaker_id not in seen and len(pool) < n:
                    seen.add(v.speaker_id)
                    pool.append(v)
    if len(pool) == n:
        return pool
    raise ValueError(f"could not draw {n} distinct voices outside `exclude` from {rate} wpm x "
                     f"{pitch} pitch x {len(accents)} accents x {len(variants)} variants")


_PHONEMES: dict[tuple[str, str], tuple[str, ...]] = {}  # (accent, word) -> espeak phoneme names
_VOWEL_START = set("aeiouAEIOUV@03")
_STOPS = set("ptkbdg")  # first letters of espeak's stop and affricate names (p, t, tS, dZ, ...)
_ONSETS = {";", "?"}  # linking/glottal onsets espeak puts before vowel-initial words


def _sub_cost(p, q):
    """Substitution cost between espeak phoneme names (weak forms and accents swap vowels)."""
    if p == q:
        return 0.0
    if p[0] == q[0]:
        return 0.3
    if p[0] in _VOWEL_START and q[0] in _VOWEL_START:
        return 0.5
    return 1.0


def _align(hyp, ref):
    """Needleman-Wunsch alignment of phoneme names `hyp` (spoken) to `ref` (dictionary), gaps
    cost 1; returns for each hyp position the aligned ref index or -1.  Rows are vectorised
    (the in-row gap recursion is a running minimum)."""
    m, n = len(hyp), len(ref)
    sub = np.array([[_sub_cost(h, r) for r in ref] for h in hyp]).reshape(m, n)
    d = np.zeros((m + 1, n + 1))
    d[0] = np.arange(n + 1)
    j = np.arange(n + 1)
    for i in range(1, m + 1):
        t = np.empty(n + 1)
        t[0] = d[i - 1, 0] + 1
        t[1:] = np.minimum(d[i - 1, 1:] + 1, d[i - 1, :-1] + sub[i - 1])
        d[i] = np.minimum.accumulate(t - j) + j
    out = np.full(m, -1)
    i, k = m, n
    while i > 0 and k > 0:
        if abs(d[i, k] - d[i - 1, k - 1] - sub[i - 1, k - 1]) < 1e-9:
            out[i - 1] = k - 1
            i, k = i - 1, k - 1
        elif abs(d[i, k] - d[i - 1, k] - 1) < 1e-9:
            i -= 1
        else:
            k -= 1
    return out


def _parse(events):
    """Spoken (non-pause) phonemes as (name, start, end, mark) from the event list; a phoneme
    ends where the next phoneme (pause included) or the utterance ends."""
    phones, mark, end_sample = [], -1, None
    for typ, sample, ident in events:
        if typ == espeak.EV_MARK:
            mark = int(ident)
        elif typ in (espeak.EV_PHONEME, espeak.EV_END, espeak.EV_MSG_TERMINATED):
            if phones and phones[-1][2] is None:
                phones[-1][2] = sample
            if typ == espeak.EV_PHONEME and not ident.startswith("_"):
                phones.append([ident, sample, None, mark])
            elif typ != espeak.EV_PHONEME:
                end_sample = sample
    if phones and phones[-1][2] is None:
        phones[-1][2] = end_sample
    return phones


def _word_labels(phones, words_ref):
    """Word index of each spoken phoneme: align the spoken phoneme names to the words' own
    phonemes; phonemes with no counterpart join a neighbouring word: glottal/linking onsets the
    next one, others (e.g. linking r) the one whose mark they follow, else the previous one."""
    ref = [p for w in words_ref for p in w]
    ref_word = np.repeat(np.arange(len(words_ref)), [len(w) for w in words_ref])
    hit = _align([p[0] for p in phones], ref)
    labels = np.where(hit >= 0, ref_word[np.maximum(hit, 0)], -1)
    known = np.nonzero(labels >= 0)[0]
    if not len(known):
        return None
    for i in np.nonzero(labels < 0)[0]:
        before, after = known[known < i], known[known > i]
        cands = ([labels[before[-1]]] if len(before) else []) + \
                ([labels[after[0]]] if len(after) else [])
        if phones[i][0] in _ONSETS:
            labels[i] = cands[-1]
        else:
            labels[i] = phones[i][3] if phones[i][3] in cands else cands[0]
    return labels


def _spans_from_labels(phones, labels, n_words):
    """[(start, end, first phoneme name)] per word, or None unless labels are monotone and
    give every word at least one phoneme."""
    if labels is None or np.any(np.diff(labels) < 0) or len(set(labels.tolist())) != n_words:
        return None
    first = np.searchsorted(labels, np.arange(n_words), side="left")
    last = np.searchsorted(labels, np.arange(n_words), side="right") - 1
    return [(phones[a][1], phones[b][2], phones[a][0]) for a, b in zip(first, last)]


def _trim_silence(wav, spans, min_run=SILENCE_RUN, max_closure=MAX_CLOSURE):
    """Move word edges off digital silence.  espeak renders stop closures as runs of exact zeros
    and puts a word-initial stop's closure at the end of the previous phoneme.  Zero runs at word
    edges are cut off; the closure before a stop-initial word (p t k b d g tS dZ) is then given to
    that word (as in TIMIT and pocketsphinx; at most `max_closure`, the rest being a pause),
    other inter-word silence and the leading silence to no word."""
    quiet = np.abs(wav.astype(np.int32)) <= 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    a, b = edges[::2], edges[1::2]  # runs of quiet samples [a, b)
    long_run = b - a >= min_run
    a, b = a[long_run], b[long_run]
    step = np.zeros(len(wav) + 1, np.int32)
    np.add.at(step, a, 1)
    np.add.at(step, b, -1)
    keep = np.cumsum(step[:-1]) == 0
    out = []
    for s, e, first in spans:
        loud = np.flatnonzero(keep[s:e])
        s2, e2 = (s + loud[0], s + loud[-1] + 1) if len(loud) else (s, e)
        if out and first[0] in _STOPS:
            run = np.flatnonzero((a < s2) & (b >= s2))  # the closure run just before the word
            if len(run):
                s2 = max(int(a[run[-1]]), out[-1][1], s2 - max_closure)
        out.append((s2, e2))
    return out


@lru_cache(maxsize=8)
def _lowpass(up, down):
    """scipy.signal.resample_poly's default anti-aliasing FIR (Kaiser, beta 5), designed once."""
    from scipy.signal import firwin

    return firwin(2 * 10 * max(up, down) + 1, 1.0 / max(up, down), window=("kaiser", 5.0))


def _resample(x, sr_in, sr_out):
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    return resample_poly(x, up, down, window=_lowpass(up, down)).astype(np.float32)


def synthesize(text: str, voice: Voice, sample_rate: int = 16000
               ) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Speak `text`; return (float32 mono waveform at sample_rate, [(word, start_s, end_s)]).

    One entry per whitespace-separated word of `text`, in order, non-overlapping, inside the audio.
    Raises ValueError for a word that espeak-ng does not pronounce (e.g. a lone punctuation mark)."""
    words = text.split()
    if not words:
        raise ValueError("synthesize: empty text")
    ssml = " ".join(f'<mark name="{i}"/>{escape(w)}' for i, w in enumerate(words))
    accent = voice.name.split("+")[0]
    with espeak.session() as es:
        wav, events = es.synth(ssml, voice.name, voice.rate, voice.pitch,
                               flags=espeak.CHARS_UTF8 | espeak.SSML)
        sr_in = es.sample_rate
    missing = sorted({w for w in words if (accent, w) not in _PHONEMES})
    if missing:  # dictionary phonemes, from a fresh instance so they never depend on history
        with espeak.session() as es:
            es.set_voice(accent)
            for w in missing:
                _PHONEMES[accent, w] = tuple(
                    q for q in (p.strip("',%=") for p in es.text_to_phonemes(w).split())
                    if q and not q.startswith("_"))
    phones = _parse(events)
    spans = _spans_from_labels(phones, _word_labels(phones, [_PHONEMES[accent, w] for w in words]),
                               len(words))
    if spans is None:  # alignment failed: fall back on the marks alone
        labels = np.array([p[3] for p in phones])
        spans = _spans_from_labels(phones, labels, len(words))
    if spans is not None:
        spans = _trim_silence(wav, spans)
    if spans is None or any(e <= s for s, e in spans):
        raise ValueError(f"espeak-ng voice {voice.name}: cannot time every word of {text!r} "
                         f"(phonemes {[p[0] for p in phones]})")
    pad = int(PAD_S * sr_in)
    x = np.concatenate([np.zeros(pad, np.float32), wav.astype(np.float32) / 32768.0,
                        np.zeros(pad, np.float32)])
    if sample_rate != sr_in:
        x = _resample(x, sr_in, sample_rate)
    times = [(w, float(s + pad) / sr_in, float(e + pad) / sr_in) for w, (s, e) in zip(words, spans)]
    return x, times
