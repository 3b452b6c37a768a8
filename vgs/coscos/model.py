"""The cross-situational net of Synnaeve et al. (2014, Fig. 1): one ReLU tower per modality into a
shared space, trained with the coscos² same/different loss, an L2 term and max-norm.

Details the paper leaves out follow the published code (bootphon/crossitlearn, MIT; nnet_archs.py,
layers.py, run_exp_AB.py): every layer, the last included, is Linear + ReLU (so embeddings are
non-negative); weights start uniform in ±init_scale·sqrt(6/(fan_in+fan_out)) with init_scale 4,
biases at 0; the loss is summed (not averaged) over the pairs of a batch; max-norm clips the L2 norm
of each unit's incoming weight vector after every update (Srivastava et al. 2014, the paper's [18])."""
import torch
from torch import nn
from torch.nn import functional as F


class Tower(nn.Sequential):
    """Linear + ReLU layers of the given sizes (in, hidden..., out); ReLU optionally capped
    (the published code caps every ReLU at 6; the paper does not mention it)."""

    def __init__(self, sizes, relu_cap=None):
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.Hardtanh(0.0, relu_cap) if relu_cap else nn.ReLU()]
        super().__init__(*layers)


class CoscosNet(nn.Module):
    def __init__(self, image_dim, token_dim, embed_dim=200, image_layers=(), speech_layers=(1024, 1024, 1024),
                 relu_cap=None):
        super().__init__()
        self.image = Tower([image_dim, *image_layers, embed_dim], relu_cap)
        self.speech = Tower([token_dim, *speech_layers, embed_dim], relu_cap)
        # input standardisation with training-set statistics (set_input_stats), saved with the model
        for name, dim in (("image", image_dim), ("token", token_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    def init_weights(self, scale, generator):
        """Uniform ±scale·sqrt(6/(fan_in+fan_out)) weights, zero biases (published code)."""
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    a = scale * (6.0 / (m.in_features + m.out_features)) ** 0.5
                    m.weight.copy_((torch.rand(m.weight.shape, generator=generator) * 2 - 1) * a)
                    m.bias.zero_()

    def set_input_stats(self, image_mean, image_std, token_mean, token_std):
        for name, v in (("image_mean", image_mean), ("image_std", image_std),
                        ("token_mean", token_mean), ("token_std", token_std)):
            getattr(self, name).copy_(torch.as_tensor(v, dtype=torch.float32))

    def embed_images(self, x):
        return self.image((x - self.image_mean) / self.image_std)

    def embed_tokens(self, x):
        return self.speech((x - self.token_mean) / self.token_std)

    def linears(self):
        return [m for m in self.modules() if isinstance(m, nn.Linear)]


def cosines(a, b):
    """(n, d), (m, d) → (n, m) cosine similarities; a zero vector (every ReLU off) has cosine 0."""
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def coscos2(cos, same):
    """Loss_coscos²: (1 − cos)/2 for "same" pairs, cos² for "different" pairs (elementwise)."""
    return torch.where(same, (1.0 - cos) / 2.0, cos * cos)


def l2_penalty(model):
    """Σ θ² over every parameter, biases included (as the published code's L2 term)."""
    return sum((p * p).sum() for p in model.parameters())


@torch.no_grad()
def apply_max_norm(model, max_norm):
    """Clip each unit's incoming weight vector (a row of Linear.weight) to L2 norm <= max_norm."""
    if max_norm:
        for m in model.linears():
            m.weight.copy_(torch.renorm(m.weight, p=2, dim=0, maxnorm=max_norm))
