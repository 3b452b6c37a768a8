"""The one recall table: rows from any stage, mean ± sd over seeds, bootstrap intervals, papers."""
import json

import numpy as np
import pytest

from vgs.recall.table import assemble, markdown, write
from vgs.runtime import CacheError


def _row(path, system, runs, paper=None, columns=None):
    row = {"system": system, "stage": "toy", "label": system.title(), "paper": paper,
           "runs": [{"seed": s, "ranks": {"search": srch, "annotation": ann}} for s, (srch, ann) in enumerate(runs)],
           "sizes": {"images": 4, "captions": 8}, "captions_per_image": [2, 2, 2, 2]}
    if columns:
        row["columns"] = columns
    path.write_text(json.dumps(row))
    return path


CFG = {"ks": [1, 5, 10], "bootstrap": 500, "seed": 0}


def test_seeds_give_mean_and_sd_and_the_random_row(tmp_path):
    a = _row(tmp_path / "a.json", "a", [([1, 1, 2, 2, 1, 1, 3, 4], [1, 2, 1, 1]),
                                        ([1, 2, 2, 2, 2, 1, 3, 4], [1, 1, 1, 1])])
    res = assemble([a], CFG)
    row, rnd = res["rows"]
    # R@1 search: seed 0 4/8 = 50%, seed 1 2/8 = 25% -> mean 37.5, sd (ddof 1) 17.68
    assert row["test"]["search"]["R@1"] == pytest.approx(37.5)
    assert row["test_sd"]["search"]["R@1"] == pytest.approx(np.std([50, 25], ddof=1))
    assert row["test"]["annotation"]["R@1"] == pytest.approx((75 + 100) / 2)
    assert [t["search"]["R@1"] for t in row["run_tables"]] == [50.0, 25.0]
    assert rnd["label"] == "Random ranking" and rnd["test"]["search"]["R@1"] == pytest.approx(25.0)
    assert "37.5 ± 17.7" in markdown(res)


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_queries(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(1, 30, size=50).tolist()
    large = rng.integers(1, 30, size=5000).tolist()
    rows = assemble([_row(tmp_path / "s.json", "s", [(small, small[:4])]),
                     _row(tmp_path / "l.json", "l", [(large, large[:4])])], CFG)["rows"]
    for r in rows[:2]:
        lo, hi = r["bootstrap_ci95"]["R@10"]["search"]
        assert lo <= r["test"]["search"]["R@10"] <= hi
    width = [r["bootstrap_ci95"]["R@10"]["search"][1] - r["bootstrap_ci95"]["R@10"]["search"][0] for r in rows[:2]]
    assert width[1] < width[0] / 4  # ~ 1/sqrt(n): 100x the queries, ~10x narrower
    # a perfect system has a degenerate interval
    p = assemble([_row(tmp_path / "p.json", "p", [([1] * 8, [1] * 4)])], CFG)["rows"][0]
    assert p["bootstrap_ci95"]["R@10"]["search"] == [100.0, 100.0]


def test_files_paper_numbers_and_extra_columns(tmp_path):
    a = _row(tmp_path / "a.json", "a", [([1] * 8, [1] * 4)], paper={"seed": "harwath2015", "row": "Spectrogram CNN"},
             columns={"Grounding acc. (random)": "49.1 (13.8)"})
    res = write([a], CFG, tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.html")
    md = (tmp_path / "r.md").read_text()
    assert "Search R@10 17.9, Annot. R@10 24.3 (Harwath & Glass (2015), Table 1)" in md
    assert "| Karpathy | 42.5 | 44.0 |" in md and "49.1 (13.8)" in md and "not comparable" in md
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["test"] == res["rows"][0]["test"]
    (tmp_path / "bad.json").write_text(json.dumps({"system": "x"}))
    with pytest.raises(CacheError, match=r"bad.json: cannot read this JSON cache \(lacks keys \['label', 'runs'"):
        assemble([tmp_path / "bad.json"], CFG)

