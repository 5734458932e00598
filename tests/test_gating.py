"""Bi-level gating: a per-row reference with torch.quantile, and hypothesis properties."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oarl.core.gating import bilevel_weights

scores_st = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, width=32), min_size=1, max_size=24
)


def reference_row(scores: list[float], tau: float, beta: float, floor: float) -> list[float]:
    """The paper's gate for one row, written the plain way."""
    s = torch.log1p(torch.tensor(scores, dtype=torch.float64))
    rng = s.max() - s.min()
    s = (s - s.min()) / rng if rng > 0 else torch.zeros_like(s)
    thr = torch.quantile(s, tau).item()
    w = []
    for v in s.tolist():
        if v < thr:
            w.append(max(v / thr, floor))
        else:
            w.append(1 + beta * (v - thr) / (1 - thr) if thr < 1 else 1.0)
    w = torch.tensor(w)
    return (w * len(w) / w.sum()).tolist()


@settings(max_examples=200, deadline=None)
@given(scores_st, st.floats(0.01, 0.99), st.floats(0.0, 5.0), st.floats(0.0, 1.0))
def test_matches_reference(row, tau, beta, floor):
    w = bilevel_weights(torch.tensor([row]), torch.ones(1, len(row), dtype=torch.bool), tau, beta, floor)
    assert w[0].tolist() == pytest.approx(reference_row(row, tau, beta, floor), rel=1e-4, abs=1e-5)


@settings(max_examples=200, deadline=None)
@given(st.lists(scores_st, min_size=1, max_size=4), st.floats(0.01, 0.99), st.floats(0.0, 5.0), st.data())
def test_mass_preserved_padding_ignored_and_finite(rows, tau, beta, data):
    L = max(len(r) for r in rows) + 2
    scores = torch.full((len(rows), L), float("nan"))  # garbage outside the mask must not leak
    mask = torch.zeros(len(rows), L, dtype=torch.bool)
    for b, r in enumerate(rows):
        start = data.draw(st.integers(0, L - len(r)))
        scores[b, start : start + len(r)] = torch.tensor(r)
        mask[b, start : start + len(r)] = True
    w = bilevel_weights(scores, mask, tau, beta)
    assert torch.isfinite(w).all()
    assert (w[~mask] == 1).all()  # exact: positions outside the mask are written as ones
    torch.testing.assert_close(w.where(mask, 0).sum(-1).double(), mask.sum(-1).double(), rtol=1e-5, atol=1e-4)


@settings(max_examples=200, deadline=None)
@given(scores_st, st.floats(0.01, 0.99), st.floats(0.0, 5.0), st.floats(0.0, 1.0))
def test_floor_before_rescaling_and_monotone(row, tau, beta, floor):
    x = torch.tensor([row])
    raw = bilevel_weights(x, torch.ones_like(x, dtype=torch.bool), tau, beta, floor, rescale=False)[0]
    assert (raw >= floor - 1e-6).all() and (raw <= 1 + beta + 1e-5).all()
    order = x[0].argsort()
    assert (raw[order].diff() >= -1e-5).all()  # larger score -> no smaller weight


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 1e4), st.integers(1, 30))
def test_equal_scores_give_ones(value, n):
    w = bilevel_weights(torch.full((2, n), value), torch.ones(2, n, dtype=torch.bool))
    # Bit-exact by construction: equal scores normalise to exact zeros, so every weight is 1 + beta * 0 = 1
    # and the rescale factor is n / n = 1.
    assert torch.equal(w, torch.ones(2, n))


def test_empty_row_all_ones_and_boost_suppress():
    scores = torch.tensor([[0.0, 1.0, 2.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    mask = torch.tensor([[True, True, True, True], [False, False, False, False]])
    w = bilevel_weights(scores, mask)
    assert torch.equal(w[1], torch.ones(4))  # exact: a row without masked positions is written as ones
    assert w[0, 3] > 1 > w[0, 0]
    assert w[0].argmax() == 3 and w[0].argmin() == 0


def test_negative_drop_scores_stay_finite_and_ordered():
    # as_joint scores are drops of a log-prob and can be negative.
    w = bilevel_weights(torch.tensor([[-5.0, -0.5, 0.0, 3.0]]), torch.ones(1, 4, dtype=torch.bool))
    assert torch.isfinite(w).all() and (w[0].diff() >= 0).all()


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(tau=0.0), "tau"),
        (dict(tau=1.0), "tau"),
        (dict(tau=-0.3), "tau"),
        (dict(beta=-1.0), "beta"),
        (dict(beta=math.inf), "beta"),
        (dict(floor=1.5), "floor"),
    ],
)
def test_bad_parameters_are_clear_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        bilevel_weights(torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), **kw)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_raise(bad):
    x = torch.tensor([[1.0, bad, 2.0]])
    with pytest.raises(ValueError, match="non-finite score .* row 0, position 1"):
        bilevel_weights(x, torch.ones(1, 3, dtype=torch.bool))


def test_masked_quantile_matches_numpy_in_float64():
    """The interpolation position is float64: float64 values match numpy.quantile to ~1e-12 (float32 was
    up to 3e-7 off), and float32 values match torch.quantile to float32 rounding."""
    from oarl.core.gating import masked_quantile

    gen = torch.Generator().manual_seed(0)
    for n in (2, 7, 999, 1000, 4097):
        vals = torch.rand(2, n, generator=gen, dtype=torch.float64) * 10
        mask = torch.ones(2, n, dtype=torch.bool)
        mask[1, n // 2 + 1 :] = False  # row 1: about half masked out
        for q in (0.1, 0.3, 0.4, 0.7, 0.99):
            got = masked_quantile(vals, mask, q)
            for row in range(2):
                want = np.quantile(vals[row][mask[row]].numpy(), q)
                assert abs(got[row].item() - want) < 1e-12, (n, q, row)
            got32 = masked_quantile(vals.float(), mask, q)
            want32 = torch.quantile(vals[0].float(), q)
            assert got32.dtype == torch.float32
            assert torch.allclose(got32[0], want32, rtol=2e-7, atol=0)
