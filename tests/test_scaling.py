"""The scaling benchmark's arithmetic (vgs/scaling.py): job-graph replay, exponent, config merge,
every rule of the main job classified."""
import math
import re
from pathlib import Path

from vgs import scaling

REPO = Path(__file__).resolve().parents[1]


def job(name, threads, inputs, cpu):
    return {"rule": name, "threads": threads, "input": inputs, "output": [name], "cpu_time": cpu}


def test_replay_of_a_job_graph_on_few_and_many_cores():
    # a -> (b, c, d) -> e; 1-thread jobs except d (2 threads)
    jobs = [job("a", 1, [], 10), job("b", 1, ["a"], 30), job("c", 1, ["a"], 20),
            job("d", 2, ["a"], 40), job("e", 1, ["b", "c", "d"], 5)]
    cpu = lambda j: j["cpu_time"]  # noqa: E731
    # 2 cores: a 0-10; b and c start at 10, c ends at 30, b at 40; d needs both cores: 40-80; e 80-85
    assert scaling.simulate(jobs, 2, cpu) == 85
    # 16 cores: b, c, d side by side after a: 10 + 40 + 5
    assert scaling.simulate(jobs, 16, cpu) == 55
    # a 2-thread job taking cpu/threads seconds: d 40-60 on 2 cores
    assert scaling.simulate(jobs, 2, lambda j: j["cpu_time"] / j["threads"]) == 65


def test_exponent_and_config_merge():
    assert scaling.exponent(10.0, 80.0, 1000, 8000) == 1.0
    assert math.isclose(scaling.exponent(1.0, 100.0, 100, 1000), 2.0)
    assert scaling.exponent(10.0, 10.0, 5, 5) is None  # same size: no exponent
    assert scaling.exponent(10.0, 12.0, 6920, 6904) is None  # under 1.5x apart: noise, no exponent
    base = {"synthetic": {"preset": "flickr8k"}, "fragment": {"seeds": [0, 1, 2], "epochs": 20}}
    assert scaling.merged(base, {"fragment": {"seeds": [0]}, "caption": {"seeds": [1]}}) == {
        "synthetic": {"preset": "flickr8k"}, "fragment": {"seeds": [0], "epochs": 20},
        "caption": {"seeds": [1]}}


def test_every_rule_has_an_item_and_every_training_rule_a_history():
    rules = set(re.findall(r"^rule (\w+):", "".join(
        p.read_text() for p in (REPO / "workflow/rules").glob("*.smk")), re.M))
    # extra targets, not in the main job: sweeps, benchmarks, pretraining, aggregates
    extra = {r for r in rules if r.endswith(("_all", "_benchmark", "_sweep", "_pretrain"))}
    assert rules - extra - set(scaling.RULES) == set()
    assert set(scaling.TRAINING) <= set(scaling.RULES)
    for rule, (item, b) in scaling.RULES.items():
        assert item is None or item in scaling.SIZES["default"] or item in ("words", "word_tokens"), rule
        assert b in (0, 1, 2), rule
