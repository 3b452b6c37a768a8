"""The trained system's two towers, loaded from the caption stage's TorchScript export
(results/caption/{system}/towers.pt, rule caption_towers; its contract is the docstring of the
caption package), and the local embeddings of the 2017 paper's sec. 4 computed with them.

What this stage uses of towers.pt (a torch.jit module, no vgs import needed):
  embed_audio(x (B, T, F) log-mels, lengths (B,)) -> (frames (B, T', D), lengths' (B,)),
      zero past each caption's length; T' ~ T / frame_stride
  pool_audio(frames, lengths) -> (B, D): mean over valid frames, then L2 unless normalize == none
  embed_images(v (N, C)) -> (N, 1, D) for image_kind fc (a whole-frame or box vector)
  pool_image(cells (N, 1, D)) -> (N, D): L2 when normalize == both
  attributes similarity (must be dot), normalize, embed_dim, feat_dim, frame_stride, image_kind (fc).
A segment embedding is pool_audio of its frames; a box embedding pool_image(embed_images(pooled)).

Departures from the paper, for speed on CPUs (both measured against the exact way by rule
patterns_compare, and both selectable by config):
  segments (patterns.segments.embed): `pool` runs the audio net once per caption and averages its
      frame outputs over each segment's span (cumulative sums); `exact` runs the net on each
      segment's frames alone (the paper: the net is fully convolutional and mean-pooled).
  boxes (patterns.boxes.embed): `roi` pools the cached whole-image conv map (results/vision/
      convmap.h5) over each box with exact area weights; `crop` crops the box, resizes it to the
      CNN's input and runs the CNN (the paper; one forward pass per box: a GPU's job).
      When the image tower is affine (checked numerically), `roi` applies it to the map's cells
      first and pools their embeddings: the same result with ~10x fewer FLOPs."""
import logging
import warnings

import numpy as np
import torch

from ..runtime import torch_device
from .proposals import span_means

log = logging.getLogger(__name__)
META = ("similarity", "normalize", "embed_dim", "feat_dim", "frame_stride", "image_kind")


class Towers:
    def __init__(self, path, device=None):
        self.device = device or torch_device()
        with warnings.catch_warnings():  # torch 2.13 calls TorchScript deprecated; the export contract keeps it
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(path), map_location=self.device).eval()
        missing = [k for k in META if not hasattr(self.net, k)]
        if missing:
            raise ValueError(f"{path}: towers lack {', '.join(missing)}; rebuild it with rule caption_towers")
        self.meta = {k: getattr(self.net, k) for k in META}
        if self.meta["similarity"] != "dot" or self.meta["image_kind"] != "fc":
            raise ValueError(f"{path}: grounding needs a system with a whole-frame (fc) image tower scored by "
                             f"a dot product, not {self.meta['image_kind']!r} / {self.meta['similarity']!r} "
                             f"(patterns.system)")
        self._affine = None

    @torch.no_grad()
    def caption_frames(self, feats, batch_size=64):
        """Frame outputs of whole captions: list of (T, F) arrays -> list of (T', D) float32 arrays.
        Batches of similar length (results do not depend on the batch: the nets mask padding)."""
        order = np.argsort([len(f) for f in feats], kind="stable")
        out = [None] * len(feats)
        for b in range(0, len(order), batch_size):
            items = order[b:b + batch_size]
            x, L = _pad([feats[i] for i in items])
            A, La = self.net.embed_audio(x.to(self.device), L.to(self.device))
            A, La = A.float().cpu().numpy(), La.cpu().numpy()
            for j, i in enumerate(items):
                out[i] = A[j, :La[j]]
        return out

    @torch.no_grad()
    def head(self, pooled, which="audio"):
        """What the system applies after pooling (L2 or nothing) on pooled vectors (N, D): its pool
        over one frame / one cell."""
        x = torch.as_tensor(pooled, dtype=torch.float32, device=self.device)[:, None, :]
        if which == "audio":
            return self.net.pool_audio(x, torch.ones(len(x), dtype=torch.int64, device=self.device)).cpu().numpy()
        return self.net.pool_image(x).cpu().numpy()

    def segment_embeddings_pool(self, frames_out, spans):
        """`pool` mode: mean of each caption's frame outputs (T'_c, D) over its spans (S_c, 2) given
        in input frames (divided by the net's stride), then the audio head.  Lists in, list out;
        one cumulative sum over all captions' frames, no loop over segments."""
        lens = np.array([len(o) for o in frames_out], np.int64)
        off = np.concatenate([[0], np.cumsum(lens)[:-1]])
        n = np.array([len(s) for s in spans], np.int64)
        if not n.sum():
            return [np.zeros((0, self.meta["embed_dim"]), np.float32) for _ in spans]
        owner = np.repeat(np.arange(len(spans)), n)
        sp = np.clip(np.concatenate([np.asarray(s, np.float64) for s in spans if len(s)]) / self.meta["frame_stride"],
                     0, lens[owner, None]) + off[owner, None]
        E = self.head(span_means(np.concatenate(frames_out), sp))
        return np.split(E, np.cumsum(n)[:-1])

    @torch.no_grad()
    def segment_embeddings_exact(self, feats, spans, batch_size=512):
        """`exact` mode: the net on each span's frames alone.  feats: list of (T, F) per caption,
        spans: list of (S_c, 2).  -> list of (S_c, D)."""
        pieces = [(c, f[s:e]) for c, (f, sp) in enumerate(zip(feats, spans)) for s, e in sp]
        owner = np.array([c for c, _ in pieces], np.int64)
        embs = []
        for b in range(0, len(pieces), batch_size):
            x, L = _pad([p for _, p in pieces[b:b + batch_size]])
            A, La = self.net.embed_audio(x.to(self.device), L.to(self.device))
            embs.append(self.net.pool_audio(A, La).float().cpu().numpy())
        E = np.concatenate(embs) if embs else np.zeros((0, self.meta["embed_dim"]), np.float32)
        return [E[owner == c] for c in range(len(feats))]

    @torch.no_grad()
    def image(self, v, batch_size=4096):
        """The image tower (before its head) on pooled CNN features (N, C) -> (N, D) float32."""
        out = [self.net.embed_images(torch.as_tensor(np.asarray(v[i:i + batch_size], np.float32),
                                                     device=self.device))[:, 0]
               for i in range(0, len(v), batch_size)]
        return torch.cat(out).float().cpu().numpy() if out else np.zeros((0, self.meta["embed_dim"]), np.float32)

    def image_is_affine(self, sample):
        """Whether image(mean of features) == mean of image(features) on real features (N, C):
        then pooling commutes with the tower and cells can be embedded before pooling."""
        if self._affine is None:
            x = np.asarray(sample, np.float32)
            w = np.random.default_rng(0).dirichlet(np.ones(len(x)), 8).astype(np.float32)
            a, b = self.image(w @ x), w @ self.image(x)
            err = float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-9))
            self._affine = err < 1e-4
            log.info("image tower affine: %s (relative error %.2e)", self._affine, err)
        return self._affine

    @torch.no_grad()
    def box_embeddings_roi(self, cells, weights):
        """`roi` mode for n images: cells (n, H*W, C) of their conv maps, weights (N, H*W) from
        proposals.roi_weights -> (n, N, D) box embeddings (batched GEMMs)."""
        X = torch.as_tensor(np.asarray(cells, np.float32), device=self.device)
        W = torch.as_tensor(weights, device=self.device)
        n, hw, c = X.shape
        if self.image_is_affine(cells[0]):
            pooled = W @ self.net.embed_images(X.reshape(n * hw, c))[:, 0].reshape(n, hw, -1)
        else:
            pooled = self.net.embed_images((W @ X).reshape(-1, c))[:, 0].reshape(n, len(W), -1)
        return self.net.pool_image(pooled.reshape(n * len(W), 1, -1)).reshape(n, len(W), -1).float().cpu().numpy()


PAD_TO = 64  # frames: batches padded to a multiple, so the CPU conv kernels see few distinct shapes
# (oneDNN caches primitives per input shape: one shape per caption length grew memory ~100 MB per
# 160 captions); the towers mask padding, so results do not change


def _pad(feats):
    """Zero-padded batch (B, T, F) float32 (T a multiple of PAD_TO) and lengths (B,) int64."""
    L = torch.tensor([len(f) for f in feats], dtype=torch.int64)
    T = -(-int(L.max()) // PAD_TO) * PAD_TO if len(feats) else 0
    x = torch.zeros(len(feats), T, feats[0].shape[1] if feats else 1)
    for j, f in enumerate(feats):  # one copy per caption, not per frame
        x[j, :len(f)] = torch.as_tensor(np.asarray(f, np.float32))
    return x, L


class CropEncoder:
    """`crop` mode: crop each box from the decoded image, resize it to the CNN's input the way the
    vision stage resizes a whole frame (cv2, INTER_AREA when shrinking, else linear), scale pixels
    (x - 127) / 128 and run the exported EfficientNet-Lite ONNX model (a file of the vision stage)
    for its pooled 1280-d feature."""

    def __init__(self, onnx_path, threads=1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = max(1, threads), 1
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        self.size = int(self.session.get_inputs()[0].shape[2])

    def crops(self, image, pixel_boxes):
        import cv2

        out = np.empty((len(pixel_boxes), self.size, self.size, 3), np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(pixel_boxes):  # one C call per crop
            crop = image[y0:y1, x0:x1]
            shrink = crop.shape[1] >= self.size and crop.shape[0] >= self.size
            out[i] = cv2.resize(crop, (self.size, self.size),
                                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return out

    def box_embeddings(self, towers, path, boxes):
        """(N, D) embeddings of fractional boxes of the image file at `path`."""
        from ..images import load_image
        from .proposals import pixel_boxes

        img = load_image(path)  # as displayed (EXIF orientation), as ingest measured it
        feats = self.features(img, pixel_boxes(boxes, img.shape[1], img.shape[0]))
        return towers.head(towers.image(feats), "image")

    def features(self, image, pixel_boxes, batch_size=64):
        """(N, 1280) pooled CNN features of the boxes of one RGB uint8 image."""
        feats = []
        for i in range(0, len(pixel_boxes), batch_size):
            x = self.crops(image, pixel_boxes[i:i + batch_size]).astype(np.float32)
            x = np.ascontiguousarray(np.moveaxis((x - 127.0) / 128.0, -1, 1))
            feats.append(self.session.run(["features"], {"image": x})[0])
        return np.concatenate(feats)
