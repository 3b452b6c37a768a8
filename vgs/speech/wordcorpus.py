"""The word corpus (WSJ's role): features from its wav.scp, windows from its word CTM."""
import logging
import tempfile

from .features import extract_features
from .kaldi_dir import check_dir, read_ctm, read_table, resolve_wav
from .windows import build_windows

log = logging.getLogger(__name__)


def wordcorpus_features(wav_scp, out_h5, report_json, cfg, threads=1):
    import os

    check_dir(os.path.dirname(wav_scp))
    scp = read_table(wav_scp)
    with tempfile.TemporaryDirectory() as tmp:  # piped wav.scp entries are decoded here
        items = [(k, resolve_wav(v, tmp, os.path.dirname(wav_scp))) for k, v in scp.items()]
        return extract_features(items, cfg, out_h5, report_json, threads, desc="fbank[wordcorpus]")


def wordcorpus_windows(fbank_h5, ctm, utt2spk, out_h5, report_json, cfg):
    seg = read_ctm(ctm)
    spk = read_table(utt2spk)
    seg["speaker"] = seg.utt_id.map(spk)
    if seg.speaker.isna().any():
        bad = sorted(seg.utt_id[seg.speaker.isna()].unique())
        raise ValueError(f"{utt2spk}: no speaker for {len(bad)} CTM utterances, e.g. {bad[:5]}")
    return build_windows(fbank_h5, seg, out_h5, report_json, cfg, attrs={"source": str(ctm)},
                         extra={"speakers": "speaker"}, desc="windows[wordcorpus]")
