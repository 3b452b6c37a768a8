"""Whole-caption audio encoders and image towers (our own code, after the published designs).

Every audio encoder maps a zero-padded batch of log-mel frames (B, T, F) with valid lengths (B,)
to frame embeddings (B, T', D) with lengths (B,).  Activations past each caption's length are set
to zero after every layer, so an embedding does not depend on how much padding its batch had: a
caption encoded in any batch equals the caption encoded alone (tests check this), and the pools
ignore padding.  `width` scales every channel count (1 = the paper's sizes); F comes from the data.

  davenet2017  Harwath & Glass (2017) sec. 3: conv 128x(F x 1), 256x(1 x 11) + max-pool 3/2,
               512x(1 x 17) + pool, 512x(1 x 17) + pool, 1024x(1 x 17), ReLU after each; T' = T/8.
  cnn5         the matchmap paper's 5-layer net, "similar to" Harwath et al. (2018) = DAVEnet
               (dharwath/DAVEnet-pytorch models/AudioModels.py): the same five convs with a pool
               after conv2..conv5; T' = T/16.  DAVEnet's input BatchNorm is left out: our features
               are already normalised per utterance, and batch statistics would see the padding.
  cnn6         cnn5 with a sixth 1024x(1 x 17) conv + ReLU before the last pool (the paper gives no
               more detail than "six layers").
  lstm         the matchmap paper's LSTM net (after Merkx et al. 2019): conv 128x(F x 5), stride 2,
               ReLU, then a 2-layer bidirectional LSTM of 512 per direction (packed: padding unseen).
  resdavenet   a residual 1-D CNN after ResDAVEnet (wnhsu/ResDAVEnet-VQ models/AudioModels.py, the
               MILAN paper's ResNet audio tower scaled to our data): conv 128x(F x 1) + BN + ReLU,
               4 stages of 2 basic blocks (two 1 x 9 convs with BN, identity or 1x1-conv shortcut),
               128/256/512/1024 channels, stride 2 at each stage; T' = T/16.  BatchNorm statistics
               are taken over valid frames only.

Image towers (trained; the ImageNet CNN below them is frozen and cached by the vision stage):
  fc       a linear map of the whole-frame vector (regions.h5 row 0) to D: one "cell".
  convmap  a k x k convolution of the cached last-conv map to D, kept spatial: H*W cells.
Both standardise their input channels with training-set statistics kept as buffers (the 2017 paper
mean-normalises its inputs; our fragment stage found z-scoring necessary at this feature scale).

`save_audio_encoder`/`load_audio_encoder` store and rebuild an encoder from one file (its spec +
weights), for stages that reuse the trained audio net."""
import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import load_torch

AUDIO_ARCHS = ("davenet2017", "cnn5", "cnn6", "lstm", "resdavenet")
IMAGE_TOWERS = ("fc", "convmap")


def _ch(c, width):
    return max(8, int(round(c * width)))


def frame_mask(lengths: torch.Tensor, T: int):
    """(B, T) bool: True on valid frames."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def _halve(lengths):
    """Valid length after a stride-2 layer that pads (k-1)/2 on each side (pool 3/2 pad 1, conv 9/2 pad 4)."""
    return (lengths + 1) // 2


def masked_mean(frames, lengths):
    """(B, T, D) -> (B, D): mean over each caption's valid frames (at least one)."""
    m = frame_mask(lengths, frames.shape[1]).to(frames.dtype)
    return (frames * m[..., None]).sum(1) / lengths.clamp_min(1)[:, None].to(frames.dtype)


class AudioEncoder(nn.Module):
    """Common interface: forward(x (B,T,F), lengths) -> (frames (B,T',D), lengths); pool(); spec."""

    __jit_unused_properties__ = ["embed_dim"]  # Python-side only (TorchScript export: export.py)

    def __init__(self, spec):
        super().__init__()
        self.spec = dict(spec)

    def pool(self, frames, lengths):
        return masked_mean(frames, lengths)

    @property
    def embed_dim(self):
        raise NotImplementedError


class ConvStack(AudioEncoder):
    """davenet2017 / cnn5 / cnn6: a plain stack of 1-D convs (conv1 spans all F bands) and pools."""

    LAYERS = {  # (channels, kernel width, max-pool 3/2 after it)
        "davenet2017": [(128, 1, False), (256, 11, True), (512, 17, True), (512, 17, True), (1024, 17, False)],
        "cnn5": [(128, 1, False), (256, 11, True), (512, 17, True), (512, 17, True), (1024, 17, True)],
        "cnn6": [(128, 1, False), (256, 11, True), (512, 17, True), (512, 17, True), (1024, 17, False),
                 (1024, 17, True)],
    }

    def __init__(self, spec):
        super().__init__(spec)
        c_in, self.convs, self.pools = spec["feat_dim"], nn.ModuleList(), []
        for c, k, pool in self.LAYERS[spec["arch"]]:
            self.convs.append(nn.Conv1d(c_in, _ch(c, spec["width"]), k, padding=k // 2))
            self.pools.append(pool)
            c_in = _ch(c, spec["width"])

    @property
    def embed_dim(self):
        return self.convs[-1].out_channels

    def forward(self, x, lengths):
        x = x.transpose(1, 2)  # (B, F, T)
        for i, conv in enumerate(self.convs):  # enumerate, not zip: TorchScript unrolls it
            x = F.relu(conv(x)) * frame_mask(lengths, x.shape[2])[:, None, :]
            if self.pools[i]:  # activations are >= 0 and padding is 0, so padding never wins a max
                x, lengths = F.max_pool1d(x, 3, 2, padding=1), _halve(lengths)
                x = x * frame_mask(lengths, x.shape[2])[:, None, :]
        return x.transpose(1, 2), lengths


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over (B, C, T) whose training statistics count valid frames only."""

    def forward(self, x, mask):
        m = mask[:, None, :].to(x.dtype)
        if self.training:
            n = m.sum().clamp_min(2)
            xm = x * m
            mean = xm.sum((0, 2)) / n
            var = ((xm * x).sum((0, 2)) / n - mean ** 2).clamp_min(0)
            with torch.no_grad():
                self.num_batches_tracked += 1
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / (n - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return torch.addcmul((self.bias - mean * scale)[None, :, None], x, scale[None, :, None]) * m


class ResBlock(nn.Module):
    """ResDAVEnet's SpeechBasicBlock: conv-BN-ReLU-conv-BN + shortcut, ReLU (1 x width convs)."""

    def __init__(self, c_in, c_out, width, stride):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, width, stride, padding=width // 2, bias=False)
        self.bn1 = MaskedBatchNorm(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, width, 1, padding=width // 2, bias=False)
        self.bn2 = MaskedBatchNorm(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Conv1d(c_in, c_out, 1, stride, bias=False)
            self.down_bn = MaskedBatchNorm(c_out)

    def forward(self, x, lengths):
        out_len = _halve(lengths) if self.conv1.stride[0] == 2 else lengths
        m = frame_mask(out_len, (x.shape[2] + 1) // 2 if self.conv1.stride[0] == 2 else x.shape[2])
        y = F.relu(self.bn1(self.conv1(x), m))
        y = self.bn2(self.conv2(y), m)
        short = x if self.down is None else self.down_bn(self.down(x), m)
        return F.relu(y + short), out_len


class ResDavenet(AudioEncoder):
    def __init__(self, spec):
        super().__init__(spec)
        w, k = spec["width"], 9
        widths = [_ch(c, w) for c in (128, 128, 256, 512, 1024)]
        self.conv1 = nn.Conv1d(spec["feat_dim"], widths[0], 1, bias=False)
        self.bn1 = MaskedBatchNorm(widths[0])
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            self.blocks.append(ResBlock(c_in, c_out, k, 2))
            self.blocks.append(ResBlock(c_out, c_out, k, 1))

    @property
    def embed_dim(self):
        return self.blocks[-1].conv2.out_channels

    def forward(self, x, lengths):
        x = x.transpose(1, 2)
        x = F.relu(self.bn1(self.conv1(x), frame_mask(lengths, x.shape[2])))
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return x.transpose(1, 2), lengths


class LSTMEncoder(AudioEncoder):
    def __init__(self, spec):
        super().__init__(spec)
        c, h = _ch(128, spec["width"]), _ch(512, spec["width"])
        self.conv = nn.Conv1d(spec["feat_dim"], c, 5, stride=2, padding=2)
        self.lstm = nn.LSTM(c, h, num_layers=2, batch_first=True, bidirectional=True)

    @property
    def embed_dim(self):
        return 2 * self.lstm.hidden_size

    def forward(self, x, lengths):
        x = x * frame_mask(lengths, x.shape[1])[..., None]
        x = F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        lengths = _halve(lengths)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return y, lengths


def build_audio_encoder(spec):
    """spec: {arch, feat_dim, width}."""
    arch = spec["arch"]
    if arch in ConvStack.LAYERS:
        return ConvStack(spec)
    if arch == "resdavenet":
        return ResDavenet(spec)
    if arch == "lstm":
        return LSTMEncoder(spec)
    raise ValueError(f"unknown audio encoder {arch!r}; allowed: {', '.join(AUDIO_ARCHS)}")


class ImageTower(nn.Module):
    """fc: (B, C) -> (B, 1, D); convmap: (B, C, H, W) -> (B, H*W, D)."""

    def __init__(self, spec):
        super().__init__()
        self.spec = dict(spec)
        self.kind: str = spec["kind"]  # TorchScript reads this, not the mixed-type spec dict
        c, d = spec["in_dim"], spec["embed_dim"]
        if spec["kind"] == "fc":
            self.proj = nn.Linear(c, d)
        elif spec["kind"] == "convmap":
            self.proj = nn.Conv2d(c, d, spec["kernel"], padding=spec["kernel"] // 2)
        else:
            raise ValueError(f"unknown image tower {spec['kind']!r}; allowed: {', '.join(IMAGE_TOWERS)}")
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("std", torch.ones(c))

    def set_stats(self, feats):
        """Per-channel mean/std over training images (and cells): feats (K, C) or (K, C, H, W)."""
        x = torch.as_tensor(feats, dtype=torch.float32)
        x = x.transpose(0, 1).reshape(x.shape[1], -1)
        self.mean.copy_(x.mean(1))
        self.std.copy_(x.std(1).clamp_min(1e-3 * float(x.std(1).mean()) + 1e-8))  # dead channels

    def forward(self, v):
        v = v.float()
        if self.kind == "fc":
            return self.proj((v - self.mean) / self.std)[:, None, :]
        v = (v - self.mean[:, None, None]) / self.std[:, None, None]
        return self.proj(v).flatten(2).transpose(1, 2)


def save_audio_encoder(encoder):
    """What a model file holds for the audio net: its spec and CPU weights."""
    return {"spec": dict(encoder.spec), "state": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}}


def load_audio_encoder(path):
    """Rebuild the trained audio encoder of a caption model file (results/caption/.../model.pt), on
    the CPU in eval mode; returns (encoder, the whole saved dict).  Input: (B, T, F) log-mels with F =
    encoder.spec['feat_dim'], normalised as results/speech/fbank.h5; output frames (B, T', D)."""
    ck = load_torch(path)
    enc = build_audio_encoder(ck["audio"]["spec"])
    enc.load_state_dict(ck["audio"]["state"])
    return enc.eval(), ck
