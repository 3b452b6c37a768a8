"""Whole-caption models (issue 9): a spoken caption's frame features (log-mels, or self-supervised
frames with speech.features: ssl) and a whole image embedded in one
space by an audio net and an image tower, scored by a similarity, trained on in-batch impostors —
the systems of Harwath & Glass (2017), the matchmap paper and MILAN (models.py, scoring.py,
train.py; evaluation in evaluate.py, the batch-size sweep in sweep.py, speed in bench.py).

Files other stages may rely on (the only contract; do not import this package from another stage):

results/caption/{system}/towers.pt — the trained towers of `system` (its first seed, best dev
epoch) as TorchScript, CPU, eval mode: `towers = torch.jit.load(path)`; no vgs import needed.
Shapes below: B captions, T feature frames, F = towers.feat_dim (normalised exactly as in the
speech stage's file the system was trained on: results/speech/fbank.h5, or ssl.h5 with
speech.features: ssl, whose frames are 20 ms), D = towers.embed_dim.
  towers.embed_audio(x, lengths) -> (frames, frame_lengths)
        x (B, T, F) float32 zero-padded past lengths (B,) int64 -> frames (B, T', D) float32, zero
        past frame_lengths (B,) int64; output frame t covers input frames
        [t * frame_stride, (t + 1) * frame_stride) (plus the receptive field); a caption's output
        does not depend on the padding of its batch.  Captions were trained truncated to max_frames
        10 ms frames (max_frames * 10 / frame_shift_ms frames of the features).
  towers.pool_audio(frames, frame_lengths) -> (B, D): mean over valid frames, L2-normalised unless
        towers.normalize == "none".  towers(x, lengths) = pool_audio(embed_audio(x, lengths)).
        Pooling a slice of frames embeds an audio segment (e.g. a word's frames // frame_stride).
  towers.embed_images(v) -> cells
        image_kind "fc": v (N, C) float whole-frame or box vectors (results/vision/regions.h5 rows)
        -> (N, 1, D); image_kind "convmap": v (N, C, H, W) conv maps (results/vision/convmap.h5)
        of any H x W -> (N, H*W, D), one embedding per cell (trained on maps average-pooled to
        grid x grid).  Input standardisation is inside the tower.
  towers.pool_image(cells) -> (N, D): mean over cells, L2-normalised when normalize == "both".
  Attributes: similarity (dot | sisa | misa | sima: how training scored an image against a
  caption, see scoring.py), normalize (none | audio | both), embed_dim, feat_dim, frame_stride,
  image_kind, grid, max_frames.
  For `dot`, the score is pool_image(cells) . pool_audio(frames); for matchmap systems the matchmap
  is cells @ frames.T (cells x frames), reduced as `similarity` says.

results/caption/{system}/{mode}/seed{seed}/model.pt — the Python-side model (models.load_audio_encoder,
train.load_model): spec + CPU weights + config + training history.
results/caption/{system}/{mode}/metrics.json — its recall-table row (vgs/recall/table.py contract)."""

# A system's config keys that change what it trains (common.smk passes exactly these, plus the mode
# and seed; a sweep or fine-tuning adds one of OPTIONAL_KEYS; paper and untrained_row only pick rows
# and labels). Here, not in train.py, so the Snakefile
# can import them without torch.
TRAIN_KEYS = ("audio", "image", "similarity", "loss", "optimizer", "lr", "lr_decay", "lr_decay_every",
              "momentum", "weight_decay", "batch_size", "epochs", "width", "max_frames", "margin",
              "temperature", "normalize", "image_kernel", "grid")
OPTIONAL_KEYS = ("fixed_seconds", "init")  # present only when set: a run without them keeps its fingerprint
