"""Fragment alignment model (Harwath & Glass 2015, sec. 2.3): image regions and spoken words in one space."""

# The config keys of fragment training (its fingerprint; common.smk passes exactly these, plus the seed).
# Here, not in train.py, so the Snakefile can import them without torch.
TRAIN_KEYS = ("embed_dim", "lr", "momentum", "weight_decay", "batch_images", "epochs", "margin",
              "standardize_images")
