"""Forced alignment with pocketsphinx 5 (its bundled en-us acoustic model and CMU dictionary).

Word pass: `set_align_text` + one full-utterance decode, times from `seg()` (10 ms frames, end
frame inclusive).  Phone pass, as pocketsphinx 5 documents it: `set_alignment()` then a second
decode of the same audio, phones from `get_alignment()`.  The very wide beams are what made every
test utterance align (defaults drop final words or fail the phone pass); an utterance that still
finds no path is retried with each of `retry_beams` (beam = pbeam = b, wbeam = b·1e20): on
espeak-ng voices 1e-80 aligned 46/60 and 1e-150 60/60 at twice the cost, so only failures pay.
Decoders live in worker processes: pocketsphinx is not thread-safe and holds the GIL."""
import logging
import os
import re

import numpy as np

from .audio import BadAudioError, load_audio, signal_problem, to_int16
from .textgrid import SILENCE

log = logging.getLogger(__name__)
FRAME = 0.01  # pocketsphinx frame shift (s)
_cfg, _dict = None, None


def make_decoder(cfg, beam=None, dict_path=None):
    from pocketsphinx import Decoder

    b = (float(cfg["beam"]), float(cfg["pbeam"]), float(cfg["wbeam"])) if beam is None else \
        (beam, beam, min(1.0, beam * 1e20))
    d = Decoder(samprate=16000, lm=None, bestpath=False, beam=b[0], pbeam=b[1], wbeam=b[2],
                logfn=os.devnull, **({"dict": str(dict_path)} if dict_path else {}))
    return d


def known_word(decoder):
    return lambda w: decoder.lookup_word(w) is not None


def _init(cfg, dict_path):
    global _cfg, _dict
    _cfg, _dict = cfg, dict_path


def _decoder(beam):
    """A fresh decoder for one beam level (None: the configured beams).  Not reused: a decoder
    carries state from one utterance to the next (live CMN and more; resetting the CMN was not
    enough), so reuse made alignments depend on which utterances a worker saw first, i.e. on
    process scheduling.  With the corpus-vocabulary dictionary one costs ~6 ms (~80 ms with the
    full CMU dictionary)."""
    return make_decoder(_cfg, beam=beam, dict_path=_dict)


def _base(word):
    return re.sub(r"\(\d+\)$", "", word)  # 'on(2)' → 'on' (alternative pronunciation)


def _word_pass(d, pcm, transcript):
    """One word-level alignment → (failure reason or None, [(word, start, end)])."""
    try:
        d.set_align_text(transcript)
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
    except RuntimeError as e:
        return f"decoder_error: {e}", []
    segs = d.seg()
    if not segs:  # no path through the alignment graph within the beams
        return "no_alignment: decoder found no path for the transcript", []
    words = [(_base(s.word), s.start_frame * FRAME, (s.end_frame + 1) * FRAME) for s in segs
             if _base(s.word).lower() not in SILENCE and not s.word.startswith("[")]
    hyp, ref = [w for w, _, _ in words], transcript.split()
    if hyp != ref:
        i = next((i for i, (a, b) in enumerate(zip(hyp, ref)) if a != b), min(len(hyp), len(ref)))
        return (f"word_mismatch: aligned {len(hyp)} of {len(ref)} words, first difference at "
                f"word {i} ({ref[i] if i < len(ref) else 'extra word'!r})"), words
    return None, words


def align_one(utt):
    """Align one utterance (dict with utt_id, wav, transcript) in this worker's decoder."""
    out = {"utt_id": utt["utt_id"], "ok": False, "reason": None, "words": [], "phones": [],
           "duration": 0.0, "phone_pass": False}
    try:
        x, _ = load_audio(utt["wav"], 16000)
    except BadAudioError as e:
        out["reason"] = f"bad_audio: {e.problem}"
        return out
    out["duration"] = len(x) / 16000
    if len(x) < 0.1 * 16000:
        out["reason"] = f"too_short: {out['duration']:.3f} s"
        return out
    if signal_problem(x) == "silent":  # wide beams would "align" any transcript to silence
        out["reason"] = f"silent_audio: peak amplitude {np.abs(x).max():.1e} (digital silence)"
        return out
    pcm = to_int16(x).tobytes()
    for attempt, beam in enumerate([None] + [float(b) for b in _cfg.get("retry_beams", [])]):
        d = _decoder(beam)
        reason, words = _word_pass(d, pcm, utt["transcript"])
        if reason is None:
            break
    if reason and reason.startswith("no_alignment"):  # say what was tried on how much audio
        reason += (f" ({len(utt['transcript'].split())} words in {out['duration']:.2f} s of audio, "
                   f"{attempt + 1} beam settings tried)")
    out["words"], out["reason"], out["retries"] = words, reason, attempt
    if reason is not None:
        return out
    out["ok"] = True
    if _cfg.get("phone_pass", True):
        try:
            d.set_alignment()
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            al = d.get_alignment()
            out["phones"] = [(p.name, p.start * FRAME, (p.start + p.duration) * FRAME)
                             for p in al.phones() if p.name != "SIL" and p.duration > 0]
            out["phone_pass"] = bool(out["phones"])
        except RuntimeError as e:
            log.warning("%s: phone pass failed (%s); words kept", utt["utt_id"], e)
    return out


def run(utts, cfg, threads, progress):
    """Align `utts` (list of dicts) with `threads` worker processes; yields results in any order.

    Returns (iterator, lexicon stats): OOV words get CMUdict or espeak-ng G2P pronunciations."""
    from . import lexicon

    probe = make_decoder(cfg)
    prons, source = lexicon.pronounce((w for u in utts for w in u["transcript"].split()),
                                      known_word(probe), cfg.get("g2p", "espeak"))
    vocab = {w for u in utts for w in u["transcript"].split()}
    oov = sorted(w for w in vocab if not known_word(probe)(w))
    stats = {"vocabulary": len(vocab), "oov_words": len(oov),
             "oov_counts": {k: sum(v == k for v in source.values()) for k in ("cmudict", "g2p")},
             "oov_from_cmudict": sorted(w for w, s in source.items() if s == "cmudict"),
             "oov_from_g2p": sorted(w for w, s in source.items() if s == "g2p"),
             "oov_unpronounceable": sorted(set(oov) - set(prons)),
             "g2p_pronunciations": {w: " ".join(prons[w]) for w, s in source.items() if s == "g2p"}}
    full_dict = probe.config["dict"]
    del probe
    # Utterances with unpronounceable words cannot be aligned: fail them up front, by name.
    bad = set(stats["oov_unpronounceable"])

    def corpus_dictionary(path):
        """The bundled dictionary's entries for the corpus words, plus the OOV pronunciations."""
        with open(full_dict) as f, open(path, "w") as out:
            out.writelines(line for line in f if line.split(" ", 1)[0].split("(")[0] in vocab)
            out.writelines(f"{w} {' '.join(re.sub(r'[0-9]', '', p) for p in ph)}\n" for w, ph in prons.items())

    def gen():
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="vgs-ps-")
        dict_path = os.path.join(tmp.name, "corpus.dict")
        corpus_dictionary(dict_path)
        todo = []
        for u in utts:
            missing = [w for w in u["transcript"].split() if w in bad]
            if missing:
                yield {"utt_id": u["utt_id"], "ok": False, "words": [], "phones": [], "duration": 0.0,
                       "phone_pass": False, "reason": f"no_pronunciation: {' '.join(missing)}"}
            else:
                todo.append(u)
        try:
            if threads <= 1:
                _init(cfg, dict_path)
                yield from map(align_one, progress(todo))
                return
            import multiprocessing as mp

            with mp.get_context("fork").Pool(threads, _init, (cfg, dict_path)) as pool:
                yield from progress(pool.imap_unordered(align_one, todo, chunksize=4), total=len(todo))
        finally:
            tmp.cleanup()

    return gen(), stats
