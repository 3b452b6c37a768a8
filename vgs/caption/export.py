"""A trained system's two towers as one TorchScript file, for later stages (grounding, pattern
discovery) that embed image boxes and audio segments without importing this package:
`torch.jit.load("results/caption/{system}/towers.pt")`.  The interface is in the package docstring."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import atomic_path
from .models import masked_mean


class Towers(nn.Module):
    def __init__(self, model, cfg):
        super().__init__()
        self.audio, self.image = model.audio, model.image
        self.similarity: str = model.similarity
        self.normalize: str = model.normalize
        self.embed_dim: int = int(model.audio.embed_dim)
        self.feat_dim: int = int(model.audio.spec["feat_dim"])
        self.image_kind: str = model.image.spec["kind"]
        self.grid: int = int(cfg["grid"])
        self.max_frames: int = int(cfg["max_frames"])
        with torch.no_grad():  # input frames per output frame (8 for davenet2017, 16 for cnn5/6 ...)
            _, n = model.audio(torch.zeros(1, 1024, self.feat_dim), torch.tensor([1024]))
        self.frame_stride: int = 1024 // int(n[0])

    @torch.jit.export
    def embed_audio(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) log-mels zero-padded past `lengths` (B,) -> frames (B, T', D), lengths (B,)."""
        return self.audio(x, lengths)

    @torch.jit.export
    def pool_audio(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T', D) frames -> (B, D): mean over valid frames, L2-normalised unless normalize is none."""
        a = masked_mean(frames, lengths)
        return a if self.normalize == "none" else F.normalize(a, dim=-1)

    @torch.jit.export
    def embed_images(self, v: torch.Tensor) -> torch.Tensor:
        """fc: (N, C) feature vectors (whole frames or boxes) -> (N, 1, D); convmap: (N, C, H, W) maps
        of any H x W -> (N, H*W, D) cells (trained on maps average-pooled to grid x grid)."""
        return self.image(v)

    @torch.jit.export
    def pool_image(self, cells: torch.Tensor) -> torch.Tensor:
        """(N, cells, D) -> (N, D): mean over cells, L2-normalised when normalize is both."""
        i = cells.mean(1)
        return F.normalize(i, dim=-1) if self.normalize == "both" else i

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled caption embeddings (B, D)."""
        frames, lengths = self.audio(x, lengths)
        return self.pool_audio(frames, lengths)


def export_towers(model_pt, out_path):
    """Script the trained towers of model_pt (a caption model file) into out_path (CPU, eval mode)."""
    from .train import load_model

    model, ck = load_model(model_pt)
    scripted = torch.jit.script(Towers(model, ck["config"]).eval())
    with atomic_path(out_path) as tmp:
        scripted.save(str(tmp))
    return scripted
