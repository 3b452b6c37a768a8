"""vgs.synth.tts: espeak-ng sentence synthesis with word times (real libespeak-ng, no mocks)."""
import multiprocessing as mp
import os

import numpy as np
import pytest

from vgs.synth.tts import Voice, english_accents, synthesize, voice_pool

CAPTION = "two red dogs are sitting next to a small yellow car on the beach"
US = Voice("en-us+f3", 160, 40)


def _energy_db(x, a, b):
    seg = x[int(a):int(b)]
    return 10 * np.log10(np.mean(seg.astype(np.float64) ** 2) + 1e-12)


def _synth_in_child(args):
    text, voice = args
    return synthesize(text, voice)


def test_voice_speaker_id_is_filesystem_safe():
    assert Voice("en-us+f3", 160, 40).speaker_id == "en-us_f3_r160_p40"
    assert Voice("en-gb-x-rp+m7", 131, 5).speaker_id == "en-gb-x-rp_m7_r131_p5"


def test_determinism_independent_of_history_and_process():
    x1, t1 = synthesize(CAPTION, US)
    synthesize("a black cat is jumping over a wooden fence", Voice("en+m3", 190, 70))
    x2, t2 = synthesize(CAPTION, US)
    assert x1.dtype == np.float32 and x1.ndim == 1
    np.testing.assert_array_equal(x1, x2)
    assert t1 == t2
    with mp.get_context("spawn").Pool(1) as pool:  # fresh interpreter, nothing cached
        x3, t3 = pool.apply(_synth_in_child, ((CAPTION, US),))
    np.testing.assert_array_equal(x1, x3)
    assert t1 == t3


def test_word_times_cover_words_in_order_inside_audio():
    for sr in (16000, 22050):
        x, times = synthesize(CAPTION, US, sample_rate=sr)
        dur = len(x) / sr
        assert [w for w, _, _ in times] == CAPTION.split()
        starts = np.array([s for _, s, _ in times])
        ends = np.array([e for _, _, e in times])
        assert np.all(ends > starts)
        assert np.all(starts[1:] >= ends[:-1])  # ordered, non-overlapping
        assert starts[0] > 0 and ends[-1] < dur
        assert 1.5 < dur < 6.0  # 14 words at 160 wpm
    # both rates give the same times (to a sample) and durations
    x16, t16 = synthesize(CAPTION, US, 16000)
    assert abs(len(x16) / 16000 - len(x) / 22050) < 1e-3
    assert np.allclose([s for _, s, _ in t16], starts)


def test_word_spans_hold_the_speech_energy():
    x, times = synthesize(CAPTION, US)
    sr = 16000
    lead = _energy_db(x, 0, times[0][1] * sr)
    tail = _energy_db(x, times[-1][2] * sr, len(x))
    for w, s, e in times:
        assert _energy_db(x, s * sr, e * sr) > max(lead, tail) + 40, w
    # speech outside all word spans is only silence/closures: < 1% of the total energy
    inside = np.zeros(len(x), bool)
    for _, s, e in times:
        inside[int(s * sr):int(e * sr)] = True
    energy = x.astype(np.float64) ** 2
    assert energy[~inside].sum() < 0.01 * energy.sum()


def test_multiword_entries_and_h_dropping_are_split():
    # espeak says "on the"/"in the" as one dictionary entry and, in the West Midlands accent,
    # drops the h of "horse" (which shifts its SSML marks by one word)
    text = "a man rides a horse on the beach in the sun"
    for voice in (Voice("en-us+m1", 150, 50), Voice("en-gb-x-gbcwmd+f4", 184, 62)):
        _, times = synthesize(text, voice)
        dur = {i: e - s for i, (_, s, e) in enumerate(times)}
        for i in (5, 6, 8, 9):  # on, the, in, the
            assert 0.03 < dur[i] < 0.25, (voice, times[i])
        assert dur[4] > 1.5 * dur[3]   # horse vs a
        assert dur[7] > 1.5 * dur[6]   # beach vs the
        assert dur[10] > 1.5 * dur[9]  # sun vs the


def test_different_voices_differ():
    xs = [synthesize(CAPTION, v)[0] for v in
          (US, Voice("en-us+m3", 160, 40), Voice("en-gb-scotland+f3", 160, 40),
           Voice("en-us+f3", 190, 40), Voice("en-us+f3", 160, 70))]
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            assert len(xs[i]) != len(xs[j]) or not np.allclose(xs[i], xs[j], atol=1e-3)
    assert len(xs[3]) < 0.92 * len(xs[0])  # faster rate, shorter audio


def test_voice_pool_distinct_deterministic_spread_and_exclusion():
    accents = english_accents()
    assert "en-us" in accents and len(accents) >= 4
    assert not any(a.startswith("mb-") for a in accents) or os.path.exists("/usr/bin/mbrola")
    pool = voice_pool(30, (130, 200), (25, 75), seed=3)
    assert pool == voice_pool(30, (130, 200), (25, 75), seed=3)
    assert pool != voice_pool(30, (130, 200), (25, 75), seed=4)
    ids = [v.speaker_id for v in pool]
    assert len(set(ids)) == 30
    first = pool[:len(accents)]
    assert len({v.name.split("+")[0] for v in first}) == len(accents)  # every accent early
    assert len({v.name.split("+")[1] for v in first}) == len(accents)  # with distinct variants
    assert all(130 <= v.rate <= 200 and 25 <= v.pitch <= 75 for v in pool)
    other = voice_pool(20, (130, 200), (25, 75), seed=3, exclude=set(ids))
    assert not set(ids) & {v.speaker_id for v in other}
    with pytest.raises(ValueError):
        voice_pool(10, (150, 150), (40, 40), seed=0, variants=("m1",), accents=("en-us",))


def test_untimeable_token_raises_clear_error():
    with pytest.raises(ValueError, match="cannot time"):
        synthesize("a dog .", US)
    with pytest.raises(ValueError, match="empty"):
        synthesize("   ", US)
    with pytest.raises(ValueError, match="no voice"):
        synthesize("a dog", Voice("xx-nonexistent", 160, 40))


def test_word_times_agree_with_pocketsphinx_forced_alignment():
    """Independent check: pocketsphinx word boundaries (frame centres) within tens of ms."""
    Decoder = pytest.importorskip("pocketsphinx").Decoder
    dec = Decoder(samprate=16000, lm=None, bestpath=False, beam=1e-80, pbeam=1e-80,
                  wbeam=1e-60, logfn=os.devnull, dither=True)  # dither: espeak's exact zeros
    diffs = []
    for text, voice in [(CAPTION, US),
                        ("a little girl is playing with a ball in the park", Voice("en+m3", 170, 45)),
                        ("three black horses stand in front of a house", Voice("en-us-nyc+f1", 150, 60))]:
        x, times = synthesize(text, voice)
        dec.set_align_text(text)
        dec.start_utt()
        dec.process_raw((x * 32767).astype(np.int16).tobytes(), full_utt=True)
        dec.end_utt()
        segs = [s for s in dec.seg() if s.word not in ("<s>", "</s>", "<sil>", "(NULL)")]
        assert [s.word.split("(")[0] for s in segs] == text.split()
        for s, (_, a, b) in zip(segs, times):
            diffs += [a - (s.start_frame * 0.01 + 0.0125), b - ((s.end_frame + 1) * 0.01 + 0.0125)]
    diffs = np.abs(diffs)
    assert np.median(diffs) < 0.025 and np.mean(diffs < 0.05) > 0.8, np.round(diffs, 3)
