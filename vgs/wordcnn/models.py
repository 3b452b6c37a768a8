"""Word-spectrogram networks of Harwath & Glass (2015), Sec. 2.2 and Table 2.

Input windows are stored as (frames=100, mels=40).  The paper (Caffe, NCHW) draws the
spectrogram with mel features vertical and frames horizontal (Fig. 1), so the network sees
(N, 1, H=40 mels, W=100 frames):

  conv  64 x (40 high, 5 wide), stride 1, pad 1 top/bottom (mels), 0 left/right (frames)
        -> (N, 64, 40+2-40+1 = 3, 100-5+1 = 96)
  LRN   across channels, size 5, alpha 1e-4, beta 0.75, k 1 (Caffe's normalisation; PyTorch
        also divides alpha by size)
  pool  max, 3 high x 4 wide, vertical stride 1, horizontal stride 2 -> (N, 64, 1, 47)
        (the padded 3-row conv map is pooled to one row: the pooling spans all frequency
        positions, i.e. the conv+pool is a bank of time-shift-tolerant whole-spectrum filters)
  fc    3008 -> 1024, ReLU, dropout 0.5 ; fc 1024 -> 1024, ReLU, dropout 0.5 ; fc -> classes

The DNN baselines of Table 2 replace conv/LRN/pool by plain FC layers on the flattened
4000-d window.  Window sizes flow from the data (e.g. 50 frames x 768 dims of self-supervised
features, vgs.speech.ssl): the conv filter spans all D feature rows, as it spans all 40 mel bands.
Every net subtracts the training-set mean spectrogram (a buffer, so the
saved model carries it) and exposes `embed()`: the 1024-d activation of the last hidden FC
after its ReLU (Caffe's in-place ReLU overwrites that blob, so it is what the paper
extracted; dropout is the identity in eval mode).
"""
import torch
from torch import nn

from ..runtime import load_torch

FRAMES, MELS, HIDDEN = 100, 40, 1024  # the paper's window (1 s of 40 log-mel bands); others work
ARCHS = ("cnn", "dnn2", "dnn3")
PAPER_TABLE2 = {  # top-1 / top-5 % on the WSJ isolated-word test set
    "dnn2": ("DNN, 2x1024 FC", 75.5, 93.9),
    "dnn3": ("DNN, 3x1024 FC", 69.5, 91.4),
    "cnn": ("CNN, 1x64 Conv + 2x1024 FC", 84.2, 97.4),
}


def _fc_stack(n_in, n_layers, dropout):
    layers = []
    for i in range(n_layers):
        layers += [nn.Linear(n_in if i == 0 else HIDDEN, HIDDEN), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class WordNet(nn.Module):
    """Mean subtraction -> front end (conv block or nothing) -> FC stack -> classifier."""

    def __init__(self, arch, n_classes, dropout=0.5, conv1_init_std=None, frames=FRAMES, dim=MELS):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown word-net architecture {arch!r}; choose one of {ARCHS}")
        if arch == "cnn" and frames < 8:
            raise ValueError(f"the CNN needs windows of at least 8 frames (conv 5 + pool 4), got {frames}")
        self.arch = arch
        self.conv1_init_std = conv1_init_std
        self.register_buffer("mean", torch.zeros(frames, dim))
        if arch == "cnn":
            self.front = nn.Sequential(
                nn.Conv2d(1, 64, kernel_size=(dim, 5), stride=1, padding=(1, 0)),
                nn.ReLU(),
                nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0),
                nn.MaxPool2d(kernel_size=(3, 4), stride=(1, 2)),
            )
            n_in, n_fc = 64 * 1 * ((frames - 8) // 2 + 1), 2  # 64 x 1 x 47 for 100 frames
            if conv1_init_std is not None:  # Caffe-style Gaussian filler (see wordcnn/filters.py)
                nn.init.normal_(self.front[0].weight, std=conv1_init_std)
                nn.init.zeros_(self.front[0].bias)
        else:
            self.front = nn.Identity()
            n_in, n_fc = frames * dim, int(arch[-1])
        self.hidden = _fc_stack(n_in, n_fc, dropout)
        self.classifier = nn.Linear(HIDDEN, n_classes)

    @property
    def window_shape(self):
        return tuple(self.mean.shape)

    @property
    def conv1(self):
        return self.front[0] if self.arch == "cnn" else None

    def embed(self, x):
        """(N, frames, dim) windows, e.g. (N, 100, 40) -> (N, 1024) penultimate activations (post-ReLU)."""
        x = (x - self.mean).transpose(1, 2).unsqueeze(1)  # (N, 1, mels, frames)
        return self.hidden(self.front(x).flatten(1))

    def forward(self, x):
        return self.classifier(self.embed(x))


def save_model(path, model, classes, extra):
    """Everything needed to rebuild the net: arch, class list (output order), weights."""
    torch.save({"arch": model.arch, "classes": list(classes), "state_dict": model.state_dict(),
                **extra}, path)


def load_model(path):
    """Rebuild a saved WordNet in eval mode; returns (model, checkpoint dict)."""
    ck = load_torch(path)
    if "state_dict" not in ck or "arch" not in ck:
        raise ValueError(f"{path}: not a word-net model file (no arch/state_dict)")
    frames, dim = ck["state_dict"]["mean"].shape  # the window size it was trained on
    model = WordNet(ck["arch"], len(ck["classes"]), frames=frames, dim=dim)
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck
