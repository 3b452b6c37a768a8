"""TextGrid I/O (praatio): our aligners write `words` + `phones` tiers; MFA's output is parsed here.

An alignment is a list of (label, start, end) in seconds, silences left out."""
from praatio import textgrid as ptg

# Labels aligners use for non-speech; never words of the transcript.
SILENCE = {"", "sil", "sp", "spn", "<eps>", "<sil>", "<s>", "</s>", "sil(1)"}


def write_textgrid(path, words, phones, duration):
    """Write a long-format TextGrid with interval tiers `words` and `phones` (gaps = silence)."""
    duration = max([duration] + [e for _, _, e in list(words) + list(phones)])
    tg = ptg.Textgrid(minTimestamp=0.0, maxTimestamp=duration)
    for name, ivs in (("words", words), ("phones", phones)):
        ivs = sorted(ivs, key=lambda iv: iv[1])
        # a reference CTM (start and duration rounded apart) can overlap its neighbour by a millisecond
        ends = [min(e, nxt[1]) for (_, _, e), nxt in zip(ivs, ivs[1:])] + [e for _, _, e in ivs[-1:]]
        entries = [(round(s, 4), round(e, 4), lab) for (lab, s, _), e in zip(ivs, ends) if e > s]
        tg.addTier(ptg.IntervalTier(name, entries, 0.0, duration))
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def _tier(tg, kind):
    """The tier called `kind`, or MFA's multi-speaker '<speaker> - <kind>'."""
    names = [n for n in tg.tierNames if n.lower() == kind or n.lower().endswith(f" - {kind}")]
    if len(names) > 1:
        raise ValueError(f"several '{kind}' tiers ({names}); one speaker per file expected")
    return tg.getTier(names[0]) if names else None


def read_textgrid(path):
    """Parse a words/phones TextGrid (ours or MFA 3's) → (words, phones), silences dropped.

    Raises ValueError naming the file when there is no words tier."""
    tg = ptg.openTextgrid(str(path), includeEmptyIntervals=False)
    words = _tier(tg, "words")
    if words is None:
        raise ValueError(f"{path}: no 'words' tier (tiers: {tg.tierNames})")
    phones = _tier(tg, "phones")

    def ivs(tier):
        if tier is None:
            return []
        return [(e.label.strip(), e.start, e.end) for e in tier.entries
                if e.label.strip().lower() not in SILENCE]

    return ivs(words), ivs(phones)
