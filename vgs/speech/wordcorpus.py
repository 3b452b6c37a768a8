"""The word corpus (WSJ's role): features from its wav.scp, windows cut at its word CTM's times or at
the times of the caption aligner (`word_corpus.times`), so both corpora can be cut by one aligner."""
import logging
import os
import tempfile

import pandas as pd
import soundfile as sf

from .align import align_utterances
from .features import extract_features
from ..corpus.text import CorpusError, TextError, normalise
from .kaldi_dir import check_dir, read_ctm, read_table, resolve_wav
from .windows import build_windows, read_segments

log = logging.getLogger(__name__)


def wordcorpus_features(wav_scp, out_h5, report_json, cfg, threads=1, featurizer=None):
    check_dir(os.path.dirname(wav_scp))
    scp = read_table(wav_scp)
    with tempfile.TemporaryDirectory() as tmp:  # piped wav.scp entries are decoded here
        items = [(k, resolve_wav(v, tmp, os.path.dirname(wav_scp))) for k, v in scp.items()]
        return extract_features(items, cfg, out_h5, report_json, threads, desc="features[wordcorpus]",
                                featurizer=featurizer)


def wordcorpus_align(kaldi_dir, ctm, aligner, cfg, textgrid_dir, segments_tsv, report_json, threads=1):
    """Align every utterance of the word corpus to its `text` with the caption aligner (same backend,
    settings and report as rule speech_align); the CTM is the reference for the boundary error."""
    check_dir(kaldi_dir)
    scp, text, spk = (read_table(os.path.join(kaldi_dir, f)) for f in ("wav.scp", "text", "utt2spk"))
    missing = sorted(set(scp) - set(text))
    if missing:
        raise ValueError(f"{kaldi_dir}/text: no transcript for {len(missing)} utterances of wav.scp, "
                         f"e.g. {missing[:5]}")
    text = {u: _transcript(kaldi_dir, u, t) for u, t in text.items()}
    with tempfile.TemporaryDirectory() as tmp:
        df = pd.DataFrame({"utt_id": list(scp), "wav": [resolve_wav(v, tmp, kaldi_dir) for v in scp.values()],
                           "transcript": [text[u] for u in scp], "speaker": [spk.get(u, "") for u in scp]})
        df["duration"] = [sf.info(w).duration for w in df.wav]  # for backends that do not read the audio
        return align_utterances(df, aligner, cfg, textgrid_dir, segments_tsv, report_json, threads,
                                truth=read_ctm(ctm))


def _transcript(kaldi_dir, utt, text):
    """A `text` line by the caption text policy (as the CTM's words and the captions)."""
    try:
        return normalise(text)
    except TextError as e:
        raise CorpusError(f"{kaldi_dir}/text: utterance {utt}: {e}") from None


def wordcorpus_windows(fbank_h5, segments, times, utt2spk, out_h5, report_json, cfg):
    """Windows at the CTM's times (`times` = 'ctm', `segments` a CTM) or an aligner's (`segments` its
    word_segments.tsv; utterances it failed to align get no windows: counted in its report)."""
    seg = read_ctm(segments) if times == "ctm" else read_segments(segments)
    spk = read_table(utt2spk)
    seg["speaker"] = seg.utt_id.map(spk)
    if seg.speaker.isna().any():
        bad = sorted(seg.utt_id[seg.speaker.isna()].unique())
        raise ValueError(f"{utt2spk}: no speaker for {len(bad)} utterances of {segments}, e.g. {bad[:5]}")
    return build_windows(fbank_h5, seg, out_h5, report_json, cfg,
                         attrs={"source": str(segments), "times": times,
                                "ctm_entries_dropped": int(seg.attrs.get("dropped_entries", 0))},
                         extra={"speakers": "speaker"}, desc="windows[wordcorpus]")
