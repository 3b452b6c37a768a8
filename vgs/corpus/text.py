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
    data = Path(path).read_bytes()
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
