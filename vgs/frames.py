"""Fixed-width windows of a word's frames, centred on the word: shared by the speech stage (1 s word
windows for the word CNN) and the coscos stage (71-frame stacked tokens).

A word of L frames (frames [s, s+L) of its utterance's normalised log-mel matrix), window `width`:
  L <= width: zero-padded equally on both sides — floor((width-L)/2) zeros before, the rest
              (one more when width-L is odd) after;
  L >  width: truncated equally on both sides — floor((L-width)/2) frames dropped at the start,
              the rest at the end.
Zero is the utterance mean after normalisation.  Only the word's own frames are used, never its
neighbours (Harwath & Glass 2015 pad with zeros)."""
import numpy as np


def word_frames(start_s, end_s, shift_s, n_frames=None):
    """Word times in seconds → (first frame, frame count), at least one frame; clipped to an
    utterance of `n_frames` frames when given (a word ending after the audio ends)."""
    s = np.round(np.asarray(start_s, dtype=np.float64) / shift_s).astype(np.int64)
    e = np.maximum(np.round(np.asarray(end_s, dtype=np.float64) / shift_s).astype(np.int64), s + 1)
    if n_frames is not None:
        e = np.minimum(e, n_frames)
    return s, np.maximum(e - s, 1)


def window_indices(start, length, width):
    """Source frame index for every window position, and a validity mask; (n,) → (n, width).

    Vectorised over words: index = start + offset + j with offset = -floor((width-L)/2) when
    padding and +floor((L-width)/2) when truncating; positions outside the word are masked."""
    start, length = np.asarray(start)[:, None], np.asarray(length)[:, None]
    diff = width - length
    offset = np.where(diff >= 0, -(diff // 2), (-diff) // 2)
    j = np.arange(width)[None, :]
    rel = j + offset                      # position inside the word
    valid = (rel >= 0) & (rel < length)
    return start + rel, valid


def cut_windows(feats, start, length, width):
    """(T, D) utterance features + word frame starts/lengths → (n, width, D) windows."""
    idx, valid = window_indices(start, length, width)
    out = feats[np.clip(idx, 0, len(feats) - 1)]
    out[~valid] = 0.0
    return out
