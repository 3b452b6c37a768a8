"""Self-supervised speech features (speech.features: ssl): one hidden layer of a wav2vec 2.0-family
model (wav2vec 2.0, HuBERT, WavLM, ...) from Hugging Face `transformers`, in place of log-mel
filterbanks (MILAN 2021: CPC/wav2vec features beat filterbanks by a wide margin).

`speech.ssl.checkpoint` is a local model directory (config.json + weights, as `save_pretrained`
writes it) or a Hugging Face model name (e.g. facebook/wav2vec2-base, facebook/hubert-base-ls960),
taken from the local Hugging Face cache or, on a connected machine, downloaded into it.  A checkpoint
that cannot be found is an error naming it and the config key before any audio is read.

Frames: hidden_states[layer] (0 = the transformer's input after the CNN encoder and projection;
n = after transformer layer n; negative counts from the last), one per conv stride (320 samples =
20 ms at 16 kHz), normalised per utterance like the filterbanks (vgs.speech.features.normalise), and
stored through the same resumable writer as fbank.h5 (feats/<utt_id>: (T, hidden_size)); the file
attrs carry `dim` and `frame_shift_ms`, from which every consumer takes its sizes.  The waveform is
zero-mean/unit-variance normalised when the checkpoint's feature extractor says so (do_normalize;
a checkpoint without preprocessor_config.json: yes, as wav2vec 2.0 base).  Utterances go through
the model one at a time: wav2vec 2.0 base has no usable attention mask, so padding a batch would
change its features."""
import logging
import math
import os

import numpy as np

from .features import normalise

log = logging.getLogger(__name__)
CONFIG_KEY = "speech.ssl.checkpoint"


class CheckpointNotFound(FileNotFoundError):
    pass


def resolve_checkpoint(checkpoint):
    """A local directory holding config.json, or the cache directory of a Hugging Face model name
    (downloaded first when a network is reachable).  Raises CheckpointNotFound naming the config key."""
    path = os.path.expanduser(str(checkpoint))
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise CheckpointNotFound(f"{CONFIG_KEY} = {checkpoint!r}: the directory has no config.json "
                                     "(not a transformers model saved with save_pretrained)")
        return path
    looks_local = path.startswith(("/", ".", "~")) or os.path.exists(os.path.dirname(path) or "\0")
    if not looks_local:
        from transformers.utils import cached_file

        offline_only = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        for offline in (True,) if offline_only else (True, False):  # the cache, then the hub
            try:
                return os.path.dirname(cached_file(path, "config.json", local_files_only=offline))
            except Exception as e:  # OSError, EnvironmentError, connection errors: all mean not here
                err = e
        raise CheckpointNotFound(f"{CONFIG_KEY} = {checkpoint!r}: no such local directory, and no model of that "
                                 f"name in the Hugging Face cache or reachable hub ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0][:200]})")
    raise CheckpointNotFound(f"{CONFIG_KEY} = {checkpoint!r}: no such directory ({os.path.abspath(path)})")


def receptive_field(kernels, strides):
    """Samples seen by one output frame of a stack of 1-d convolutions."""
    r = 1
    for k, s in zip(reversed(kernels), reversed(strides)):
        r = (r - 1) * s + k
    return r


class SSLFeaturizer:
    """Frames of one utterance from a wav2vec 2.0-family model (see the module doc)."""

    parallel = False  # one model, torch's own threads
    what = "ssl features"

    def __init__(self, cfg, device=None):
        import torch
        from transformers import AutoFeatureExtractor, AutoModel

        from ..runtime import torch_device

        path = resolve_checkpoint(cfg["checkpoint"])
        model = AutoModel.from_pretrained(path, local_files_only=True)
        c = model.config
        if not hasattr(c, "conv_stride"):
            raise ValueError(f"{CONFIG_KEY} = {cfg['checkpoint']!r}: a {type(model).__name__} is not a "
                             "wav2vec 2.0-family speech model (no convolutional feature encoder)")
        n = c.num_hidden_layers
        self.layer = cfg["layer"] if cfg["layer"] >= 0 else n + 1 + cfg["layer"]
        if not 0 <= self.layer <= n:
            raise ValueError(f"speech.ssl.layer = {cfg['layer']}: the model has layers 0..{n} (or -1..-{n + 1})")
        try:
            fe = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError):
            fe = None
        self.normalize_wave = bool(getattr(fe, "do_normalize", True))
        self.sample_rate = int(getattr(fe, "sampling_rate", 16000))
        stride = math.prod(c.conv_stride)
        self.frame_shift_ms = 1000.0 * stride / self.sample_rate
        self.min_seconds = receptive_field(c.conv_kernel, c.conv_stride) / self.sample_rate
        self.dim, self.mode, self.dtype = int(c.hidden_size), cfg["normalise"], np.dtype(cfg["dtype"])
        self.device = torch_device() if device is None else device
        self.model = model.eval().to(self.device)
        self.torch = torch
        self.layout = (f"feats/<utt_id>: (T, {self.dim}) {self.dtype.name}; hidden_states[{self.layer}] of "
                       f"{type(model).__name__}; frame i covers {stride} samples from {stride}*i")
        log.info("%s from %s: layer %d of %d, %d-d frames every %g ms, waveform normalised: %s",
                 type(model).__name__, path, self.layer, n, self.dim, self.frame_shift_ms, self.normalize_wave)

    def __call__(self, x, key=None):
        x = np.asarray(x, np.float32)
        if self.normalize_wave:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(x)[None].to(self.device), output_hidden_states=True)
        h = out.hidden_states[self.layer][0].float().cpu().numpy()
        return normalise(h, self.mode).astype(self.dtype)
