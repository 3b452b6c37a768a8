"""The one reader of corpus text files (Flickr8k token and split lists, wav2capt/wav2spk, Kaldi
wav.scp/utt2spk/text, word CTMs): UTF-8 with or without a byte-order mark, LF, CRLF or CR line
ends.  A file in another encoding is a CorpusError naming the file, line and column of the first
byte that is not UTF-8: guessing a code page would silently change every other non-ASCII word."""
import codecs
import re
from pathlib import Path

LINE_END = re.compile(r"\r\n|\r|\n")  # not str.splitlines: it also splits on \x1c, \x85, \u2028 ...


class CorpusError(ValueError):
    """The corpus cannot be read: names the file and the problem."""


def read_lines(path):
    """[(line number, text without its line end)] of a UTF-8 text file, blank lines included."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:  # a directory, permission denied, an I/O error: the corpus needs this file
        raise CorpusError(f"{path}: cannot read ({type(e).__name__}: {e.strerror or e})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CorpusError(f"{path}: UTF-16 text (byte-order mark {data[:2].hex(' ')}); save it as UTF-8, "
                          f"e.g. iconv -f UTF-16 -t UTF-8")
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        before = LINE_END.split(data[skip:skip + e.start].decode("utf-8"))  # valid up to the error
        raise CorpusError(f"{path}:{len(before)}:{len(before[-1]) + 1}: byte 0x{data[skip + e.start]:02x} "
                          f"is not UTF-8 ({e.reason}); "
                          f"the file must be UTF-8, e.g. iconv -f latin1 -t utf-8") from None
    lines = LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the final line end
    return list(enumerate(lines, 1))


# --- Caption text policy (docs/bad-input.md "Caption text"): one function for every transcript ---
# Mapped before NFKC (which would turn ´ and ` into combining marks): typographic quotes to ASCII
# quotes, hyphens to '-', dashes and the minus sign to a word boundary; the zero-width space is one.
TYPOGRAPHIC = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4`\u2039\u203a", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2043", "-"), **dict.fromkeys("\u2012\u2013\u2014\u2015\u2212\u200b", " "),
})
# Other symbols (So: emoji, ©; Sk: emoji skin tones; Me: keycap frames; Co/Cs/Cn: private, surrogate,
# unassigned) separate words; format characters (Cf: ZWJ, BOM, bidi marks, tags) and variation
# selectors are removed; control characters (Cc) are an error (TextError).
BOUNDARY = {"So", "Sk", "Me", "Co", "Cs", "Cn"}
VARIATION = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
MARKER = re.compile(r"^(<[^<>]*>|\[[^\[\]]*\]|\+\+.*\+\+)$")  # <s>, [noise], ++garbage++: not words


class TextError(ValueError):
    """Text that cannot be a transcript: a control character (names it and its column)."""


def normalise(text):
    """Caption (or hypothesis, or word-corpus) text -> transcript: lower-case words joined by one
    space, by the policy above: NFKC; quotes and dashes mapped; emoji and other symbols split words;
    format characters removed; punctuation (Unicode category P) other than the apostrophe stripped
    from both ends of a word ("dog." -> dog, “a -> a, «chien» -> chien), an apostrophe only when it
    quotes the word on both sides ('dog' -> dog; 's, n't, dogs' and dog's stay); tokens without a
    letter or digit and non-speech markers (<s>, [noise], ++garbage++) dropped.  A control character
    (Unicode Cc other than tab and line ends) raises TextError."""
    import unicodedata

    for i, c in enumerate(text):
        if unicodedata.category(c) == "Cc" and c not in "\t\n\r":
            raise TextError(f"control character U+{ord(c):04X} at column {i + 1}")
    text = unicodedata.normalize("NFKC", text.translate(TYPOGRAPHIC)).translate(TYPOGRAPHIC)
    text = "".join(" " if cat in BOUNDARY or c in "\t\n\r" else "" if cat == "Cf" else c
                   for c in VARIATION.sub("", text) for cat in (unicodedata.category(c),))
    out = []
    for w in text.lower().split():
        if MARKER.match(w):
            continue
        a, b = 0, len(w)  # an apostrophe stays: a clitic ('s, n't in tokenised Flickr8k) or a possessive
        while a < b and unicodedata.category(w[a])[0] == "P" and w[a] != "'":
            a += 1
        while b > a and unicodedata.category(w[b - 1])[0] == "P" and w[b - 1] != "'":
            b -= 1
        w = w[a:b]
        if len(w) > 2 and w[0] == w[-1] == "'":  # 'quoted' (or ‘quoted’)
            w = w[1:-1].strip(".,;:!?")
        if any(c.isalnum() for c in w):
            out.append(w)
    return " ".join(out)
