"""Numerics: weights stay finite and sum to T for any scores, masks and dtypes; NaN/inf fall back, counted."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import layout, tiny_lm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarl.batch.credit import gate_scores
from oarl.batch.reshape import finite_advantages, oar_token_advantages
from oarl.batch.rollout import Rollout
from oarl.batch.settings import OARSettings
from oarl.core.gating import bilevel_weights
from oarl.core.layout import Layout
from oarl.core.scorers import SCORERS, gradient_scores, perturbation_scores

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scores_and_mask(draw, allow_nonfinite: bool = False):
    """A random ``[B, L]`` score tensor of a random dtype (finite values up to the dtype's max) and mask."""
    dtype = draw(st.sampled_from(DTYPES))
    B, L = draw(st.integers(1, 4)), draw(st.integers(1, 12))
    top = float(torch.finfo(dtype).max)
    value = st.one_of(
        st.just(0.0),
        st.floats(-1e-30, 1e-30),  # sub-normal and tiny spreads
        st.floats(-10.0, 10.0),
        st.floats(-top, top),  # up to the dtype's largest finite value
    )
    if allow_nonfinite:
        value = st.one_of(value, st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    kind = draw(st.sampled_from(["random", "all-equal", "one-hot"]))
    if kind == "all-equal":
        flat = [draw(value)] * (B * L)
    elif kind == "one-hot":  # a very peaked row: one large score, the rest zero
        flat = [0.0] * (B * L)
        flat[draw(st.integers(0, B * L - 1))] = draw(value)
    else:
        flat = draw(st.lists(value, min_size=B * L, max_size=B * L))
    scores = torch.tensor(flat, dtype=torch.float64).reshape(B, L).to(dtype)
    mask = torch.tensor(draw(st.lists(st.booleans(), min_size=B * L, max_size=B * L))).reshape(B, L)
    return scores, mask


def check_weights(w, mask):
    assert w.dtype == torch.float32 and torch.isfinite(w).all()
    assert (w[~mask] == 1).all() and (w >= 0).all()  # exact: unmasked positions are written as ones
    torch.testing.assert_close(w.where(mask, 0).sum(-1).double(), mask.sum(-1).double(), rtol=1e-4, atol=1e-3)


@FUZZ
@given(scores_and_mask(), st.floats(0.01, 0.99), st.floats(0.0, 10.0), st.floats(0.0, 1.0))
def test_gate_is_finite_and_mass_preserving_for_any_finite_scores(sm, tau, beta, floor):
    scores, mask = sm
    scores = scores.where(torch.isfinite(scores), 0)  # bf16/fp16 casting can overflow to inf
    check_weights(bilevel_weights(scores, mask, tau, beta, floor), mask)


@FUZZ
@given(scores_and_mask(allow_nonfinite=True), st.floats(0.01, 0.99), st.floats(0.0, 10.0))
def test_gate_scores_fall_back_to_uniform_on_nonfinite_rows(sm, tau, beta):
    scores, mask = sm
    w, bad = gate_scores(scores, mask, tau, beta)
    check_weights(w, mask)
    expected_bad = (mask & ~torch.isfinite(scores)).any(-1)
    assert torch.equal(bad, expected_bad)
    assert (w[bad] == 1).all()  # exact: the fallback writes uniform ones
    good = ~bad
    if good.any():
        ref = bilevel_weights(scores[good], mask[good], tau, beta)
        torch.testing.assert_close(w[good], ref)


@FUZZ
@given(
    st.lists(
        st.sampled_from([0.0, 1.5, -2.0, float("nan"), float("inf"), -float("inf")]), min_size=1, max_size=8
    )
)
def test_nonfinite_sequence_advantages_become_zero(values):
    adv, bad = finite_advantages(torch.tensor(values))
    assert torch.isfinite(adv).all() and torch.equal(bad, ~torch.isfinite(torch.tensor(values)))
    assert (adv[bad] == 0).all()  # exact: non-finite advantages are replaced by zeros


class CharTok:
    """Slow tokenizer: id i -> chr(i + 32) (ids 0..94), so any id sequence decodes."""

    def decode(self, ids, **_):
        return "".join(chr(i + 32) for i in ids)

    def batch_decode(self, seqs, **_):
        return [self.decode(s) for s in seqs]

    def __call__(self, *a, **k):
        raise NotImplementedError


def rollouts(B: int = 4, T: int = 10):
    """Completions ``<reasoning>ANSWER 7`` (ids of a char tokenizer) and left-padded prompts."""
    text = [c - 32 for c in b"x=1;ANSWER 7"]
    cids = torch.tensor([text[-T:]] * B)
    cmask = torch.ones_like(cids)
    pids = torch.randint(1, 90, (B, 3), generator=torch.Generator().manual_seed(0))
    return pids, torch.ones_like(pids), cids, cmask


@pytest.mark.parametrize("method", ["gradient", "perturbation"])
@pytest.mark.parametrize("poison", ["nan", "inf"])
def test_nan_or_inf_logits_never_reach_the_advantages(method, poison):
    model = tiny_lm(vocab=100)
    with torch.no_grad():
        model.lm_head.weight[5:9] = float(poison)  # NaN / inf logits at a few vocabulary entries
    pids, pmask, cids, cmask = rollouts()
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    res = oar_token_advantages(
        model, CharTok(), Rollout(pids, pmask, cids, cmask, adv), OARSettings(method=method)
    )
    assert torch.isfinite(res.advantages).all() and torch.isfinite(res.weights).all()
    assert res.nonfinite.all() and not res.scored.any()  # every row fell back, and it is counted
    torch.testing.assert_close(res.advantages, adv.unsqueeze(-1).expand_as(res.advantages))


def test_a_scorer_returning_nan_in_one_row_only_affects_that_row(monkeypatch):
    def half_nan(model, layout, **kw):
        ids, reasoning = layout.input_ids, layout.reasoning_mask
        s = torch.rand(ids.shape, generator=torch.Generator().manual_seed(0)) * reasoning
        s[1, reasoning[1].nonzero()[0, 0]] = float("nan")
        return s

    monkeypatch.setitem(SCORERS, "gradient", dataclasses.replace(SCORERS["gradient"], fn=half_nan))
    pids, pmask, cids, cmask = rollouts()
    rollout = Rollout(pids, pmask, cids, cmask, torch.tensor([1.0, float("nan"), 1, 1]))
    res = oar_token_advantages(tiny_lm(), CharTok(), rollout, OARSettings())
    assert torch.isfinite(res.advantages).all()
    assert res.nonfinite.tolist() == [False, True, False, False]
    assert res.nonfinite_advantage.tolist() == [False, True, False, False]
    assert (res.advantages[1] == 0).all() and (res.weights[1] == 1).all()  # exact: fallback writes 0 and 1
    assert res.scored.tolist() == [True, False, True, True]
    assert not torch.equal(res.weights[0], torch.ones_like(res.weights[0]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("scorer", [gradient_scores, perturbation_scores])
def test_half_precision_models_give_finite_scores_and_weights(dtype, scorer):
    model = tiny_lm().to(dtype)
    ids, am, rm, an = layout([(3, 8, 2), (2, 5, 1)], pad_side="left")
    scores = scorer(model, Layout(ids, am, rm, an), probe="as_mean")
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    check_weights(bilevel_weights(scores, rm), rm)


@pytest.mark.parametrize("scale", [1e-6, 1e4])
@pytest.mark.parametrize("probe", ["lt_logits", "as_mean", "as_joint"])
def test_uniform_or_very_peaked_probe_distributions(scale, probe):
    model = tiny_lm()
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)  # ~uniform (1e-6) or one-hot (1e4) outcome distributions
    ids, am, rm, an = layout([(3, 8, 2), (2, 5, 1)])
    for scorer in (gradient_scores, perturbation_scores):
        scores = scorer(model, Layout(ids, am, rm, an), probe=probe)
        assert torch.isfinite(scores).all(), scorer.__name__
        w, bad = gate_scores(scores, rm)
        check_weights(w, rm)
        assert not bad.any()
