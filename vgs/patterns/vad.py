"""Voice activity at the 10 ms feature frames: a trained VAD (silero-vad from PyPI, whose wheel
ships its model) or an energy VAD (fallback), and their agreement with aligned word time.

The 2017 paper drops a segment when its VAD (trained on TIMIT) calls >= 40% of it silence.
Feature frame i of results/speech/fbank.h5 is centred at 10 i + 5 ms; silero scores 32 ms windows
(512 samples at 16 kHz), and a frame takes the score of the window holding its centre."""
import logging

import numpy as np

log = logging.getLogger(__name__)
RATE = 16000
SILERO_HOP = 512  # samples per silero window at 16 kHz


def load_silero(threads=1):
    """silero-vad's batched ("sequence") ONNX model from the installed wheel (no download); None
    (logged) when the package is missing or its model cannot be loaded."""
    from ..runtime import set_threads

    try:
        from silero_vad import load_silero_vad
    except ImportError as e:
        log.warning("silero-vad not importable (%s): falling back to the energy VAD", e)
        return None
    set_threads(threads)  # importing silero_vad sets torch to one thread
    try:
        return load_silero_vad(sequence=True)
    except Exception as e:  # a damaged wheel or missing onnxruntime
        log.warning("silero-vad model not loadable (%s): falling back to the energy VAD", e)
        return None


def silero_frames(model, wav, n_frames):
    """Speech probability of each of n_frames feature frames (float32)."""
    probs = model.audio_forward(np.asarray(wav, np.float32), sampling_rate=RATE)
    if len(probs) == 0:
        return np.zeros(n_frames, np.float32)
    j = (np.arange(n_frames) * 160 + 80) // SILERO_HOP
    return probs[np.minimum(j, len(probs) - 1)].astype(np.float32)


def energy_frames(wav, n_frames, below_peak_db=35.0, floor_dbfs=-60.0):
    """Energy VAD: a frame (25 ms window centred on it) is speech when its level is within
    `below_peak_db` of the utterance's loudest frame and above `floor_dbfs`.  -> bool (n_frames,)."""
    x = np.asarray(wav, np.float64)
    padded = np.pad(x, (120, 400))  # window of frame i: samples [160 i - 120, 160 i + 280)
    win = np.lib.stride_tricks.sliding_window_view(padded, 400)[::160][:n_frames]
    db = 10 * np.log10(np.mean(win ** 2, axis=1) + 1e-12)
    if len(db) < n_frames:
        db = np.pad(db, (0, n_frames - len(db)), constant_values=-120.0)
    return (db >= db.max(initial=-120.0) - below_peak_db) & (db >= floor_dbfs)


def word_frames(offsets, utt_index, starts, ends):
    """Packed bool mask (offsets[-1],): frames whose centre lies inside a word [start, end) (seconds)
    of its utterance (utt_index per word, into offsets).  Difference array + cumsum: no loop."""
    n = np.diff(offsets)
    a = np.clip(np.ceil(np.asarray(starts) * 100 - 0.5).astype(np.int64), 0, n[utt_index])
    b = np.clip(np.ceil(np.asarray(ends) * 100 - 0.5).astype(np.int64), 0, n[utt_index])
    diff = np.zeros(offsets[-1] + 1, np.int64)
    np.add.at(diff, offsets[utt_index] + a, 1)
    np.add.at(diff, offsets[utt_index] + b, -1)
    return np.cumsum(diff)[:-1] > 0


def agreement(speech, in_word):
    """Frame agreement of a VAD's speech decision with aligned word time (packed bool arrays)."""
    speech, in_word = np.asarray(speech, bool), np.asarray(in_word, bool)
    n = max(len(speech), 1)
    acc = float(np.mean(speech == in_word)) if len(speech) else None
    p_s, p_w = speech.mean(), in_word.mean()
    chance = p_s * p_w + (1 - p_s) * (1 - p_w)
    sil, nonword = ~speech, ~in_word
    return {
        "frames": int(len(speech)),
        "accuracy": acc,
        "kappa": float((acc - chance) / (1 - chance)) if acc is not None and chance < 1 else None,
        "speech_share_vad": float(p_s),
        "speech_share_words": float(p_w),
        "silence_recall": float((sil & nonword).sum() / max(nonword.sum(), 1)),  # non-word time called silence
        "silence_precision": float((sil & nonword).sum() / max(sil.sum(), 1)),
        "word_time_called_silence": float((sil & in_word).sum() / max(in_word.sum(), 1)),
        "n": n,
    }


def silence_fraction(speech, offset, spans):
    """Share of each span [s, e) (frames of one utterance starting at packed `offset`) that the VAD
    calls silence, from one cumulative sum."""
    spans = np.asarray(spans, np.int64)
    if not len(spans):
        return np.zeros(0)
    c = np.concatenate([[0], np.cumsum(speech[offset:offset + spans[:, 1].max()])])
    return 1 - (c[spans[:, 1]] - c[spans[:, 0]]) / np.maximum(spans[:, 1] - spans[:, 0], 1)


def read_words(path):
    """A word-segment table (utt_id, index, word, start, end in seconds), sorted by utterance and index."""
    from ..cache import read_tsv

    w = read_tsv(path, ["utt_id", "index", "word", "start", "end"], unique=["utt_id", "index"])
    return w.sort_values(["utt_id", "index"], kind="stable").reset_index(drop=True)


def build_vad(utts, n_frames, params, threads=1):
    """VAD of every utterance: utts a DataFrame (utt_id, wav), n_frames {utt_id: feature frames}.
    Returns (utt_ids, offsets, {"silero": probs or None, "energy": bool}, skipped [{utt_id, reason}])."""
    from concurrent.futures import ThreadPoolExecutor

    from ..speech.audio import BadAudioError, load_audio

    model = load_silero(threads) if params["method"] == "silero" else None

    def one(row):
        utt, wav = row
        if utt not in n_frames:
            return utt, None, "no features in fbank.h5 (skipped upstream)"
        try:
            x, _ = load_audio(wav, RATE)
        except BadAudioError as e:
            return utt, None, str(e)
        T = n_frames[utt]
        sil = silero_frames(model, x, T) if model is not None else None
        return utt, (sil, energy_frames(x, T, params["energy_below_peak_db"], params["energy_floor_dbfs"])), None

    ids, sil, en, skipped = [], [], [], []
    with ThreadPoolExecutor(max(1, threads)) as pool:  # onnxruntime and soundfile release the GIL
        for utt, out, why in pool.map(one, zip(utts["utt_id"], utts["wav"])):
            if out is None:
                skipped.append({"utt_id": utt, "reason": why})
                continue
            ids.append(utt)
            sil.append(out[0])
            en.append(out[1])
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in en])]).astype(np.int64)
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)
    masks = {"silero": cat(sil, np.float32) if model is not None else None, "energy": cat(en, bool)}
    return np.array(ids, dtype=object), offsets, masks, skipped


def speech_mask(masks, params):
    """The decision the stage uses: silero probability >= threshold, or the energy VAD when silero
    was not asked for or could not be loaded.  Returns (bool mask, method used)."""
    if params["method"] == "silero" and masks["silero"] is not None:
        return masks["silero"] >= params["threshold"], "silero"
    return masks["energy"], "energy"


def vad_report(ids, offsets, decisions, words):
    """Agreement of each VAD's decisions ({name: packed bool}) with the non-word time of each word
    table ({name: DataFrame})."""
    row = {u: i for i, u in enumerate(ids)}
    out = {}
    for name, w in words.items():
        w = w[w["utt_id"].isin(row)]
        covered = np.zeros(len(ids), bool)
        idx = w["utt_id"].map(row).to_numpy(np.int64)
        covered[idx] = True
        in_word = word_frames(offsets, idx, w["start"].to_numpy(), w["end"].to_numpy())
        keep = np.repeat(covered, np.diff(offsets))  # only utterances this table aligned
        out[name] = {"utterances": int(covered.sum()),
                     **{m: agreement(d[keep], in_word[keep]) for m, d in decisions.items()}}
    return out


def run_vad(utterances_tsv, fbank_h5, params, split, out_h5, threads=1):
    """Rule patterns_vad: results/patterns/vad.h5, the packed frame decisions of every utterance of
    the split (the decision used, and both VADs), skips and speed in its attributes."""
    import json
    import time

    import h5py

    from ..cache import read_tsv
    from ..runtime import atomic_path, open_h5

    t0, c0 = time.perf_counter(), time.process_time()
    u = read_tsv(utterances_tsv, ["utt_id", "wav", "split"], unique="utt_id")
    u = u[u["split"] == split] if split != "all" else u
    with open_h5(fbank_h5) as f:
        n_frames = {k: int(f["feats"][k].shape[0]) for k in u["utt_id"] if k in f["feats"]}
    ids, offsets, masks, skipped = build_vad(u, n_frames, params, threads)
    speech, used = speech_mask(masks, params)
    seconds = float(np.diff(offsets).sum()) / 100
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    run = {"split": split, "method_requested": params["method"], "method_used": used,
           "utterances": int(len(ids)), "skipped": skipped, "audio_hours": round(seconds / 3600, 3),
           "speech_share": float(speech.mean()) if len(speech) else None,
           "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "x_real_time": round(seconds / max(wall, 1e-9), 1)}
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("utt_ids", data=ids, dtype=h5py.string_dtype())
        f.create_dataset("offsets", data=offsets)
        f.create_dataset("speech", data=speech, compression="gzip")
        f.create_dataset("energy", data=masks["energy"], compression="gzip")
        if masks["silero"] is not None:
            f.create_dataset("silero", data=masks["silero"].astype(np.float16), compression="gzip")
        f.attrs.update(method=used, params=json.dumps(params, sort_keys=True), run=json.dumps(run),
                       layout="speech[offsets[u]:offsets[u + 1]]: per 10 ms feature frame of utt_ids[u], "
                              "True = speech (the decision of `method`); energy: the energy VAD's decision; "
                              "silero: its speech probability")
    log.info("VAD %s on %d utterances (%d skipped), speech share %.3f, %.1f s wall, %.1f CPU s", used,
             len(ids), len(skipped), run["speech_share"] or 0, wall, cpu)
    return run


def run_vad_report(vad_h5, words_tsvs, report_json):
    """Rule patterns_vad_report: vad_report.json, the VAD run (skips, speed) and both VADs' frame
    agreement with each word table's non-word time.  Its own rule, so that a new alignment reruns
    this report and the labels, not the VAD and the groundings."""
    import json

    from ..runtime import atomic_path, open_h5, strings

    with open_h5(vad_h5) as f:
        ids, offsets = strings(f["utt_ids"][:]), f["offsets"][:]
        decisions = {"energy": f["energy"][:].astype(bool)}
        if f.attrs["method"] == "silero":
            decisions["silero"] = f["speech"][:].astype(bool)
        run = json.loads(f.attrs["run"])
    words = {name: read_words(p) for name, p in words_tsvs.items()}
    report = {**run, "agreement": vad_report(ids, offsets, decisions, words)}
    with atomic_path(report_json) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n")
    return report
