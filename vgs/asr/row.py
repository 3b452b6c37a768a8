"""A cascade system's row of the recall table: the text row's evaluation on ASR hypotheses
(results/fragment/<system>/metrics.json, contract in vgs/recall/table.py) with the recogniser's
WER beside it and MILAN's Table 5 "Speech→ASR→Text" as the published reference."""
import json

from ..cache import read_json
from ..runtime import atomic_path

LM_NAMES = {"general": "general LM", "caption": "caption LM"}
PAPER = {"seed": "milan2021_cascade", "row": "Speech→ASR→Text"}


def label(lm, trained_on_asr):
    return f"ASR → text ({LM_NAMES[lm]}{', trained on ASR text' if trained_on_asr else ''})"


def cascade_row(metrics_json, wer_json, lm, trained_on_asr, system, out_json):
    row = read_json(metrics_json)
    wer = read_json(wer_json, ["wer"])["wer"]
    if "test" not in wer:
        raise ValueError(f"{wer_json}: no WER of the test split (the row is scored on test)")
    row.update(system=system, stage="asr", label=label(lm, trained_on_asr), paper=PAPER,
               columns={**row.get("columns", {}), "ASR WER % (test)": wer["test"]["wer"]},
               asr={"lm": lm, "trained_on": "ASR hypotheses" if trained_on_asr else "ground-truth transcripts",
                    "wer": wer})
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(row, indent=1))
    return row
