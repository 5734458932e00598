"""The easy arithmetic word problems (a task SmolLM2-135M can partly solve) and the pass-rate summary."""

from __future__ import annotations

import json
import re

import pytest

from oarl.lab.math import easy_arith
from oarl.lab.math.pass_rates import summarize_pass_rates, wilson


def _solve(q: str) -> int:
    """An independent solver for the five templates (reads the numbers and the verbs)."""
    n = [int(x) for x in re.findall(r"\d+", q)]
    if "equally among" in q:
        return n[0] // n[1]
    if "boxes with" in q:
        return n[0] * n[1]
    if "buys" in q:
        return n[0] + n[1] - n[2]
    if "gives" in q:
        return n[0] - n[1]
    return n[0] + n[1]


def test_answers_are_right_and_positive():
    for split in ("train", "test"):
        for p in easy_arith.generate(300, split):
            assert int(p["answer"]) == _solve(p["question"]) and int(p["answer"]) > 0


def test_splits_are_disjoint_deterministic_and_balanced():
    train = easy_arith.generate(2000, "train")
    test = easy_arith.generate(300, "test")
    assert not {p["question"] for p in train} & {p["question"] for p in test}
    assert len({p["question"] for p in test}) == 300  # distinct
    assert easy_arith.generate(50, "test") == test[:50]
    assert easy_arith.generate(10, "test", seed=1) != test[:10]
    assert {p["kind"] for p in test[:5]} == set(easy_arith.KINDS)


def test_bad_arguments_fail_loudly():
    with pytest.raises(ValueError, match="split"):
        easy_arith.generate(1, "dev")
    with pytest.raises(ValueError, match="kind"):
        easy_arith.generate(1, "test", kinds=("pow",))


def test_write_splits_reads_back_through_the_math_loader(tmp_path):
    from oarl.lab.math.data import load_records

    paths = easy_arith.write_splits(tmp_path, 20, 5)
    ds = load_records(paths["test"])
    assert len(ds) == 5 and ds[0]["answer"] == json.loads(paths["test"].read_text().splitlines()[0])["answer"]


def test_wilson_interval():
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.08  # 0/50: upper bound ~0.071
    lo, hi = wilson(25, 50)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-12
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_summarize_pass_rate_spread():
    rows = [{"row": r, "correct": s < k, "answer": "1"} for r, k in enumerate([0, 1, 4, 8]) for s in range(8)]
    out = summarize_pass_rates(rows)
    assert out["prompts"] == 4 and out["pass_rates"] == [0.0, 0.125, 0.5, 1.0]
    assert out["prompts_in_range"] == 2 and out["prompts_with_variance"] == 2
    assert out["pass_rate_histogram"]["0"] == 1 and out["pass_rate_histogram"]["1"] == 1
    assert abs(out["accuracy"] - 13 / 32) < 1e-12


def test_levels_set_the_number_ranges():
    small = easy_arith.generate(100, "test", kinds=("add",), level=1)
    large = easy_arith.generate(100, "test", kinds=("add",), level=2)
    assert max(int(p["answer"]) for p in small) <= 18 < max(int(p["answer"]) for p in large)
    with pytest.raises(ValueError, match="level"):
        easy_arith.generate(1, "test", level=3)
