import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oarl import ess_ratio, oracle_recall, reshape_advantages, top_mass_share


def test_ess_ratio_extremes():
    mask = torch.ones(2, 4, dtype=torch.bool)
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    assert ess_ratio(w, mask).tolist() == pytest.approx([1.0, 0.25])
    assert ess_ratio(w, torch.zeros_like(mask)).tolist() == [1.0, 1.0]  # exact: empty rows are written as 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=30))
def test_ess_ratio_bounds(ws):
    w = torch.tensor([ws])
    r = ess_ratio(w, torch.ones_like(w, dtype=torch.bool)).item()
    assert 1 / len(ws) - 1e-6 <= r <= 1 + 1e-6


def test_top_mass_share():
    adv = torch.tensor([[10.0] + [1.0] * 9, [1.0] * 10, [0.0] * 10])
    share = top_mass_share(adv, torch.ones(3, 10, dtype=torch.bool))
    assert share[0].item() == pytest.approx(10 / 19)
    assert share[1].item() == pytest.approx(0.1)
    assert math.isnan(share[2].item())
    neg = top_mass_share(-adv[:1], torch.ones(1, 10, dtype=torch.bool))  # uses |A|
    assert neg.item() == pytest.approx(10 / 19)


def test_oracle_recall_exact_and_ties():
    oracle = torch.tensor([[0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    # Exact: recall is hits / k of small integers (2/2, 1/2), exactly representable.
    assert oracle_recall(torch.tensor([[0.0, 5.0, 4.0, 1.0, 0.0, 0.0]]), oracle).item() == 1.0
    assert oracle_recall(torch.tensor([[9.0, 5.0, 0.0, 1.0, 0.0, 0.0]]), oracle).item() == 0.5
    # A constant scorer gets chance level (k/n of the candidates), not a position-dependent value.
    cand = torch.tensor([[0, 1, 1, 1, 1, 0]], dtype=torch.bool)
    assert oracle_recall(torch.ones(1, 6), oracle, cand).item() == pytest.approx(2 / 4)
    assert math.isnan(oracle_recall(torch.ones(1, 6), torch.zeros_like(oracle)).item())


def test_reshape_advantages():
    out = reshape_advantages(torch.tensor([2.0, -1.0]), torch.tensor([[1.0, 0.5], [2.0, 0.0]]))
    # Exact: one multiplication of small powers of two per entry, whose products are representable.
    assert out.tolist() == [[2.0, 1.0], [-2.0, 0.0]]
    with pytest.raises(ValueError, match="seq_advantages"):
        reshape_advantages(torch.ones(3), torch.ones(2, 4))
