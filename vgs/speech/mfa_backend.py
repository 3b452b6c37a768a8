"""Montreal Forced Aligner backend: run `mfa align` on a corpus we lay out, parse its TextGrids.

MFA needs Kaldi (kalpy) from conda-forge, so it cannot run from our pip virtualenv:
    conda create -n aligner -c conda-forge montreal-forced-aligner
    conda activate aligner
    mfa model download acoustic english_us_arpa     # once, needs network
and put that `mfa` on PATH (or set speech.mfa.command to its full path).  With
speech.mfa.dictionary = generate we write the dictionary ourselves (CMUdict with stress digits,
espeak-ng G2P for the rest), which matches the ARPAbet english_us_arpa model and avoids <unk>."""
import logging
import os
import shutil
import subprocess
from pathlib import Path

from .textgrid import read_textgrid

log = logging.getLogger(__name__)


def mfa_command(cfg):
    """The mfa executable, or a RuntimeError explaining how to get one."""
    exe = shutil.which(cfg.get("command", "mfa"))
    if exe is None:
        raise RuntimeError(
            f"speech aligner 'mfa' selected but no '{cfg.get('command', 'mfa')}' command on PATH. "
            "Install: conda create -n aligner -c conda-forge montreal-forced-aligner; "
            "mfa model download acoustic english_us_arpa; then set speech.mfa.command to "
            "<env>/bin/mfa (MFA from pip cannot run: kalpy needs Kaldi from conda-forge).")
    return exe


def write_corpus(utts, corpus_dir):
    """MFA corpus layout: <speaker>/<utt_id>.wav (symlink) + <utt_id>.lab (transcript)."""
    for u in utts:
        d = Path(corpus_dir) / str(u.get("speaker") or "spk")
        d.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.abspath(u["wav"]), d / f"{u['utt_id']}.wav")
        (d / f"{u['utt_id']}.lab").write_text(u["transcript"] + "\n")


def write_dictionary(utts, path):
    """A pronunciation dictionary for every transcript word (word<TAB>phones)."""
    from . import lexicon

    words = {w for u in utts for w in u["transcript"].split()}
    prons, source = lexicon.pronounce(words, known=lambda w: False)
    with open(path, "w") as fh:
        for w in sorted(prons):
            fh.write(f"{w}\t{' '.join(prons[w])}\n")
    return {"vocabulary": len(words),
            "oov_from_g2p": sorted(w for w, s in source.items() if s == "g2p"),
            "oov_unpronounceable": sorted(words - set(prons))}


def parse_output(utts, out_dir):
    """Read <out>/<speaker>/<utt>.TextGrid per utterance; a missing file is a failure."""
    for u in utts:
        cands = [Path(out_dir) / str(u.get("speaker") or "spk") / f"{u['utt_id']}.TextGrid",
                 Path(out_dir) / f"{u['utt_id']}.TextGrid"]
        path = next((p for p in cands if p.exists()), None)
        r = {"utt_id": u["utt_id"], "ok": False, "reason": None, "words": [], "phones": [],
             "duration": float(u.get("duration") or 0.0), "phone_pass": False}
        if path is None:
            r["reason"] = "mfa_no_output: MFA wrote no TextGrid (unalignable or skipped)"
        else:
            try:
                r["words"], r["phones"] = read_textgrid(path)
                r["ok"], r["phone_pass"] = True, bool(r["phones"])
            except Exception as e:
                r["reason"] = f"mfa_bad_textgrid: {e}"
        yield r


def run(utts, cfg, threads, workdir):
    """Align with MFA; returns (results iterator, lexicon stats)."""
    exe = mfa_command(cfg)
    work = Path(workdir)
    shutil.rmtree(work, ignore_errors=True)
    corpus, out = work / "corpus", work / "aligned"
    write_corpus(utts, corpus)
    stats = {}
    dictionary = cfg.get("dictionary", "generate")
    if dictionary == "generate":
        dictionary = str(work / "dictionary.txt")
        stats = write_dictionary(utts, dictionary)
    cmd = [exe, "align", "--clean", "--overwrite", "-j", str(threads), "--output_format",
           "long_textgrid", "--beam", str(cfg.get("beam", 10)), "--retry_beam",
           str(cfg.get("retry_beam", 40)), *map(str, cfg.get("extra_args", [])),
           str(corpus), dictionary, cfg.get("acoustic_model", "english_us_arpa"), str(out)]
    log.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return parse_output(utts, out), stats
