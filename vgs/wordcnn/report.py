"""Table 2 analogue (isolated-word accuracy of the three nets beside the paper's numbers) and
the share of the caption vocabulary the pretraining never saw (paper: 75%)."""
import json
import logging

import numpy as np

from ..cache import read_json
from ..runtime import atomic_path, load_torch
from .data import read_meta
from .models import PAPER_TABLE2

log = logging.getLogger(__name__)


def unseen_vocabulary(caption_words, classes):
    """Fraction of caption word types (and tokens) outside the pretraining classes."""
    words = np.asarray(caption_words, dtype=object)
    types = set(words.tolist())
    known = set(classes)
    unseen = types - known
    tok = np.array([w not in known for w in words], bool)
    return {"caption_types": len(types), "unseen_types": len(unseen),
            "unseen_type_fraction": len(unseen) / max(1, len(types)),
            "unseen_token_fraction": float(tok.mean()) if len(tok) else 0.0,
            "paper_unseen_type_fraction": 0.75}


def table2(metrics_paths, model_path, caption_windows, out_json, out_md):
    rows = []
    for path in metrics_paths:
        m = read_json(path, ["arch", "top1", "top5", "classes"])
        name, p1, p5 = PAPER_TABLE2[m["arch"]]
        rows.append({"arch": m["arch"], "model": name, "top1": 100 * m["top1"], "top5": 100 * m["top5"],
                     "paper_top1": p1, "paper_top5": p5, "classes": m["classes"],
                     "test_tokens": m["test_tokens"], "train_windows_per_s": m["train_windows_per_s"],
                     "inference_windows_per_s": m["inference_windows_per_s"]})
    classes = load_torch(model_path)["classes"]
    vocab = unseen_vocabulary(read_meta(caption_windows)["words"], classes)
    out = {"rows": rows, "caption_vocabulary": vocab}
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(out, indent=2))
    lines = ["| Model | Top-1 (ours) | Top-5 (ours) | Top-1 (paper) | Top-5 (paper) | train win/s | infer win/s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['top1']:.1f} | {r['top5']:.1f} | {r['paper_top1']:.1f} | "
                     f"{r['paper_top5']:.1f} | {r['train_windows_per_s']:.0f} | {r['inference_windows_per_s']:.0f} |")
    c = rows[0] if rows else {"classes": 0, "test_tokens": 0}
    lines += ["", f"{c['classes']} word classes, {c['test_tokens']} test tokens "
              "(paper: 6,010 WSJ words, ~122k test tokens).",
              f"Caption vocabulary unseen in pretraining: {vocab['unseen_types']} of "
              f"{vocab['caption_types']} types = {100 * vocab['unseen_type_fraction']:.1f}% "
              f"({100 * vocab['unseen_token_fraction']:.1f}% of tokens); paper: 75%."]
    with atomic_path(out_md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    log.info("\n%s", "\n".join(lines))
    return out
