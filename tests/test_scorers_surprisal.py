"""STARE (``stare``) against a plain-loop reference of its selection, and its weight = loss-reweighting identity."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import layout, tiny_lm
from hypothesis import given
from hypothesis import strategies as st
from scorer_refs import row_stats, signs

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer

ROWS = [(3, 7, 2), (2, 9, 1), (4, 5, 3), (2, 6, 2), (3, 8, 1), (2, 4, 2)]
GROUPS = torch.tensor([0, 0, 0, 1, 1, 1])
REWARDS = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])


@pytest.fixture(scope="module")
def model():
    return tiny_lm("llama", seed=5)


@pytest.mark.parametrize("variant", ["O1", "C2"])
@pytest.mark.parametrize("ratio", [0.1, 0.3])
def test_stare_reweights_the_top_surprisal_tokens_of_each_advantage_sign(model, variant, ratio):
    ids, am, rm, an = batch = layout(ROWS, pad_side="left", seed=2)
    lay = Layout(*batch, group_ids=GROUPS, rewards=REWARDS)
    opts = dict(variant=variant, top_p_ratio=ratio, target_entropy=float("inf"))
    got = get_scorer("stare")(model, lay, **opts)
    sign = signs(GROUPS, REWARDS)
    surprisal = {}
    for b in range(len(ROWS)):
        lp = row_stats(model, ids, am, b)[0]
        surprisal.update({(b, c): -v for c, v in lp.items() if rm[b, c]})
    want = {key: 1.0 for key in surprisal}
    for s, weight in [(1, 1.1), (-1, 0.9)] if variant == "C2" else [(1, 1.1)]:
        keys = sorted((k for k in surprisal if sign[k[0]] == s), key=lambda k: -surprisal[k])
        for k in keys[: max(1, math.ceil(len(keys) * ratio - 1e-9))]:
            want[k] = weight
    assert {k: round(float(got[k]), 6) for k in want} == {k: round(v, 6) for k, v in want.items()}
    assert (got[~rm] == 0).all()


def test_stare_gate_off_above_the_target_entropy_is_plain_grpo(model):
    batch = layout(ROWS, seed=2)
    lay = Layout(*batch, group_ids=GROUPS, rewards=REWARDS)
    got = get_scorer("stare")(model, lay, target_entropy=0.3)  # a random tiny LM: entropy ~ log(100) > 0.3
    assert torch.equal(got, batch[2].float())


@given(
    ratio=st.floats(0.5, 1.5),
    adv=st.floats(-3, 3),
    w=st.floats(0.01, 5),
    eps=st.floats(0.05, 0.3),
)
def test_a_positive_loss_weight_is_an_advantage_weight_under_the_clipped_surrogate(ratio, adv, w, eps):
    """STARE multiplies the per-token clipped surrogate by w > 0; that is the surrogate of the advantage w A."""
    clipped = min(max(ratio, 1 - eps), 1 + eps)
    loss_weighted = w * min(ratio * adv, clipped * adv)
    adv_weighted = min(ratio * (w * adv), clipped * (w * adv))
    assert math.isclose(loss_weighted, adv_weighted, rel_tol=1e-12, abs_tol=1e-12)
