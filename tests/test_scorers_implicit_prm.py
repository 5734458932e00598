"""PRIME (``prime``) against a plain-loop reference of ``beta * log(pi / pi_ref)``; refused without a reference."""

from __future__ import annotations

import pytest
import torch
from conftest import layout, tiny_lm
from scorer_refs import row_stats, signs

from oarl.batch.reshape import OARSettings
from oarl.batch.step import OARStep
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer

ROWS = [(3, 7, 2), (2, 9, 1), (4, 5, 3), (2, 6, 2)]
GROUPS = torch.tensor([0, 0, 1, 1])
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize("credit", ["aligned", "reward", "abs"])
@pytest.mark.parametrize("returns", [False, True])
def test_prime_is_beta_log_ratio_of_policy_and_reference(credit, returns):
    policy, ref = tiny_lm("llama", seed=6), tiny_lm("llama", seed=7)
    ids, am, rm, an = batch = layout(ROWS, pad_side="left", seed=1)
    lay = Layout(*batch, group_ids=GROUPS, rewards=REWARDS)
    got = get_scorer("prime")(policy, lay, reference_model=ref, beta=0.1, credit=credit, returns=returns)
    sign = signs(GROUPS, REWARDS)
    want = torch.zeros_like(got, dtype=torch.float64)
    for b in range(len(ROWS)):
        lp, lr = row_stats(policy, ids, am, b)[0], row_stats(ref, ids, am, b)[0]
        cols = rm[b].nonzero().flatten().tolist()
        r = [0.1 * (lp[c] - lr[c]) for c in cols]
        if returns:
            r = [sum(r[i:]) for i in range(len(r))]
        for c, v in zip(cols, r, strict=True):
            want[b, c] = v * sign[b] if credit == "aligned" else (abs(v) if credit == "abs" else v)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


def test_prime_without_a_reference_is_refused_by_name():
    with pytest.raises(ValueError, match="needs reference_model="):
        OARStep(OARSettings(method="prime"))
    lay = Layout(*layout([(2, 4, 1)]), group_ids=torch.tensor([0]), rewards=torch.tensor([1.0]))
    with pytest.raises(ValueError, match="needs reference_model="):
        get_scorer("prime")(tiny_lm("llama"), lay)
