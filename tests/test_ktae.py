"""KTAE's key-token scorer: Fisher p-values == scipy's, information gain and scores == a slow per-row loop."""

from __future__ import annotations

import math
import random

import pytest
import torch
from scipy.stats import fisher_exact
from test_tree import GROUP, batch

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer
from oarl.core.scorers.group.ktae import fisher_pvalues, information_gain


def test_fisher_pvalues_match_scipy():
    rng = random.Random(0)
    tables = [[rng.randint(0, 8) for _ in range(4)] for _ in range(200)] + [
        [0, 0, 3, 5],
        [4, 0, 0, 4],
        [1, 1, 1, 1],
    ]
    got = fisher_pvalues(torch.tensor(tables, dtype=torch.float64))
    want = torch.tensor([fisher_exact([[a, b], [c, d]])[1] for a, b, c, d in tables], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def entropy_bits(ps: list[float]) -> float:
    return -sum(p * math.log2(p) for p in ps if p > 0)


def slow_value(rows: list[set[int]], correct: list[bool], v: int) -> float:
    """One token type, straight from the paper's definitions (scipy's Fisher test, entropies in bits)."""
    a = sum(v in r for r, c in zip(rows, correct, strict=True) if c)
    b = sum(v in r for r, c in zip(rows, correct, strict=True) if not c)
    nc, nw = sum(correct), len(correct) - sum(correct)
    c, d, n = nc - a, nw - b, len(rows)
    p = fisher_exact([[a, b], [c, d]])[1]
    fisher = math.exp(-2 * p) if p < 1 else 0.0
    ig = entropy_bits([nc / n, nw / n])
    for x, y in ((a, b), (c, d)):
        if x + y:
            ig -= (x + y) / n * entropy_bits([x / (x + y), y / (x + y)])
    h = math.asin(math.sqrt(a / nc)) - math.asin(math.sqrt(b / nw))
    return 2 * (1 / (1 + math.exp(-(fisher + ig) / 2 * h)) - 0.5)


@pytest.mark.parametrize("credit", ["aligned", "abs"])
@pytest.mark.parametrize("pad_side", ["right", "left"])
def test_matches_a_slow_loop(credit, pad_side):
    rows = GROUP + [([7, 9], [4, 4, 1]), ([7, 9], [5, 1]), ([7, 9], [4, 2])]  # a second group, 3 rows
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    ids, am, rm, an = batch(rows, pad_side)
    got = get_scorer("ktae")(None, Layout(ids, am, rm, an, group_ids=groups, rewards=rewards), credit=credit)
    want = torch.zeros(ids.shape, dtype=torch.float64)
    for g in (0, 1):
        members = [b for b in range(len(rows)) if groups[b] == g]
        mean = float(rewards[members].mean())
        sets = [{int(t) for t in ids[b][rm[b]]} for b in members]
        correct = [float(rewards[b]) > mean for b in members]
        for b in members:
            for j in rm[b].nonzero().flatten().tolist():
                v = slow_value(sets, correct, int(ids[b, j]))
                sign = (float(rewards[b]) > mean) - (float(rewards[b]) < mean)
                want[b, j] = v * sign if credit == "aligned" else abs(v)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    assert (got[~rm] == 0).all() and (got[rm] != 0).any()


def test_uniform_groups_and_nonfinite_rewards_score_zero():
    ids, am, rm, an = batch(GROUP)
    groups = torch.zeros(4, dtype=torch.long)
    for rewards in (torch.ones(4), torch.tensor([1.0, float("nan"), 1.0, 1.0])):
        got = get_scorer("ktae")(None, Layout(ids, am, rm, an, group_ids=groups, rewards=rewards))
        assert (got == 0).all()


def test_information_gain_is_zero_for_independent_tables_and_h_for_perfect_ones():
    ig = information_gain(torch.tensor([[2.0, 2.0, 2.0, 2.0], [4.0, 0.0, 0.0, 4.0]]))
    torch.testing.assert_close(ig, torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_needs_group_context_and_checks_options():
    ids, am, rm, an = batch(GROUP)
    with pytest.raises(ValueError, match="group_ids"):
        get_scorer("ktae")(None, Layout(ids, am, rm, an))
    for bad in ({"credit": "x"}, {"fisher_weight": -1}, {"fisher_weight": 0, "ig_weight": 0}):
        with pytest.raises(ValueError, match="ktae"):
            get_scorer("ktae").validate(bad)
