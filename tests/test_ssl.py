"""speech.features: ssl -- the real loading code on a tiny wav2vec 2.0 / HuBERT built from a
transformers config here (random weights, saved to a temp dir, loaded by path): no weights can be
downloaded on our machines."""
import numpy as np
import pytest
import torch

from vgs.speech.features import extract_features, load_feats
from vgs.speech.ssl import CheckpointNotFound, SSLFeaturizer, receptive_field, resolve_checkpoint
from vgs.speech.windows import build_windows

SR = 16000


def tiny_ssl_model(path, kind="wav2vec2", normalize=True):
    """A 2-layer, 16-d model with wav2vec 2.0's 320-sample stride (20 ms frames)."""
    import transformers as tf

    cfg = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
               conv_dim=(8, 8, 8), conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8),
               num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    config, model = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model),
                     "hubert": (tf.HubertConfig, tf.HubertModel)}[kind]
    torch.manual_seed(0)
    model(config(**cfg)).save_pretrained(path)
    tf.Wav2Vec2FeatureExtractor(do_normalize=normalize).save_pretrained(path)
    return path


def cfg(path, **kw):
    return {"checkpoint": str(path), "layer": 1, "normalise": "none", "dtype": "float32", **kw}


@pytest.fixture(scope="module")
def tiny_w2v(tmp_path_factory):
    return tiny_ssl_model(tmp_path_factory.mktemp("w2v") / "tiny-wav2vec2")


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert"])
def test_frames_are_the_chosen_hidden_layer(tmp_path, kind):
    """Loaded by path through AutoModel; frames = hidden_states[layer] of the normalised waveform."""
    from transformers import AutoModel

    path = tiny_ssl_model(tmp_path / kind, kind)
    f = SSLFeaturizer(cfg(path), device=torch.device("cpu"))
    assert (f.dim, f.frame_shift_ms, f.layer) == (16, 20.0, 1)
    assert f.min_seconds * SR == receptive_field((10, 8, 8), (5, 8, 8)) == 10 + 7 * 5 + 7 * 40
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1 + 0.05
    h = f(x)
    assert h.shape == ((SR - f.min_seconds * SR) // 320 + 1, 16) == (49, 16)  # 1 s -> 49 frames
    ref = AutoModel.from_pretrained(path).eval()
    z = torch.from_numpy((x - x.mean()) / np.sqrt(x.var() + 1e-7))[None]
    with torch.no_grad():
        want = ref(z, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(h, want[1][0].numpy(), atol=1e-5)
    last = SSLFeaturizer(cfg(path, layer=-1), device=torch.device("cpu"))(x)
    np.testing.assert_allclose(last, want[2][0].numpy(), atol=1e-5)  # -1 = after the last layer
    assert not np.allclose(last, h)


def test_normalisation_and_storage_dtype(tiny_w2v):
    x = np.random.default_rng(1).standard_normal(SR // 2).astype(np.float32)
    h = SSLFeaturizer(cfg(tiny_w2v, normalise="per_bin", dtype="float16"), device=torch.device("cpu"))(x)
    assert h.dtype == np.float16
    np.testing.assert_allclose(h.astype(np.float32).mean(0), 0, atol=2e-3)
    np.testing.assert_allclose(h.astype(np.float32).std(0), 1, atol=2e-2)


@pytest.mark.parametrize("checkpoint, message", [
    ("{tmp}/no-such-model", "no such directory"),
    ("{tmp}", "has no config.json"),
    ("nobody-here/no-such-model-xyz", "no such local directory, and no model of that name"),
])
def test_missing_checkpoint_is_an_error_naming_it_and_the_key(tmp_path, monkeypatch, checkpoint, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach for the network in tests
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    name = checkpoint.format(tmp=tmp_path)
    with pytest.raises(CheckpointNotFound, match=message) as e:
        resolve_checkpoint(name)
    assert "speech.ssl.checkpoint" in str(e.value) and name in str(e.value)


def test_layer_out_of_range(tiny_w2v):
    with pytest.raises(ValueError, match=r"speech.ssl.layer = 3: the model has layers 0..2"):
        SSLFeaturizer(cfg(tiny_w2v, layer=3), device=torch.device("cpu"))


def test_written_like_fbank_resumed_and_windowed(tiny_w2v, tmp_path):
    """ssl.h5 through the fbank writer (dim and frame shift in its attrs), resumed after a partial
    run, then cut into word windows of 1 s = 50 frames of 16 dims."""
    import pandas as pd
    import soundfile as sf

    rng = np.random.default_rng(2)
    items = []
    for k, sec in enumerate((1.0, 1.5, 0.01)):  # the last is shorter than one receptive field
        p = tmp_path / f"u{k}.wav"
        sf.write(p, (rng.standard_normal(int(sec * SR)) * 0.1).astype(np.float32), SR)
        items.append((f"u{k}", str(p)))
    c = cfg(tiny_w2v, normalise="per_bin")
    f = SSLFeaturizer(c, device=torch.device("cpu"))
    out = tmp_path / "ssl.h5"
    extract_features(items[:1], c, out, tmp_path / "r1.json", featurizer=f)
    (tmp_path / "ssl.h5").rename(f"{out}.partial")  # as if killed after the first utterance
    rep = extract_features(items, c, out, tmp_path / "r.json", featurizer=f)
    assert rep["reused_from_partial_run"] == 1 and rep["stored"] == 2 and rep["skipped"] == 1
    assert "shorter than one 20.3125 ms frame" in rep["skips"][0]["problem"]  # 325 samples
    feats = load_feats(out)
    assert feats["u0"].shape == (49, 16) and feats["u1"].shape == (74, 16)
    import h5py

    with h5py.File(out) as h5:
        assert (h5.attrs["dim"], h5.attrs["frame_shift_ms"], h5.attrs["checkpoint"]) == (16, 20.0, str(tiny_w2v))
    seg = pd.DataFrame({"utt_id": ["u0", "u1"], "index": [0, 0], "word": ["a", "b"],
                        "start": [0.2, 0.5], "end": [0.5, 1.0]})
    w = build_windows(out, seg, tmp_path / "w.h5", tmp_path / "w.json",
                      {"frames": 100, "dtype": "float32", "compression": "none"})
    with h5py.File(tmp_path / "w.h5") as h5:
        win = h5["windows"][()]
        assert win.shape == (2, 50, 16) and h5.attrs["width"] == 50 and h5.attrs["frame_shift_ms"] == 20.0
    # "a": frames 10..24 (15 frames) centred in 50: 17 zero frames before, 18 after
    np.testing.assert_array_equal(win[0, 17:32], feats["u0"][10:25])
    assert not win[0, :17].any() and not win[0, 32:].any()
    assert w["windows"] == 2
