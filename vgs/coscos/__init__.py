"""Cross-situational word learning (Synnaeve et al. 2014): spoken content words and image fragments in one space."""

# The config keys of coscos training (its fingerprint; common.smk passes exactly these, plus the seed).
# Here, not in train.py, so the Snakefile can import them without torch.
TRAIN_KEYS = ("frames", "embed_dim", "image_layers", "speech_layers", "relu_cap", "init_scale", "l2",
              "max_norm", "rho", "eps", "batch_images", "epochs", "patience", "curve_images")
