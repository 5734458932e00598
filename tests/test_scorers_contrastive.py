"""cDPO (``cdpo``) against a plain-loop reference of its contrastive estimation; refused without the models."""

from __future__ import annotations

import pytest
import torch
from conftest import layout, tiny_lm
from scorer_refs import row_stats, signs

from oarl.batch.reshape import OARSettings
from oarl.batch.step import OARStep
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer

ROWS = [(3, 7, 2), (2, 9, 1), (4, 5, 3), (2, 6, 2), (2, 5, 1)]
GROUPS = torch.tensor([0, 0, 1, 1, 1])
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5])


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_cdpo_weights_are_the_contrast_probability_or_its_complement(beta):
    pos, neg = tiny_lm("llama", seed=8), tiny_lm("llama", seed=9)
    ids, am, rm, an = batch = layout(ROWS, pad_side="left", seed=4)
    lay = Layout(*batch, group_ids=GROUPS, rewards=REWARDS)
    got = get_scorer("cdpo")(None, lay, contrast_models=(pos, neg), beta=beta)
    sign = signs(GROUPS, REWARDS)
    want = torch.zeros_like(got, dtype=torch.float64)
    for b in range(len(ROWS)):
        zp, zn = row_stats(pos, ids, am, b)[2], row_stats(neg, ids, am, b)[2]
        for c in rm[b].nonzero().flatten().tolist():
            p = float(torch.softmax((1 + beta) * zp[c] - beta * zn[c], -1)[ids[b, c]])
            want[b, c] = p if sign[b] > 0 else (1 - p if sign[b] < 0 else 1.0)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)
    assert sign[4] == 0 and (got[4][rm[4]] == 1).all()  # a row at its group's mean keeps plain GRPO's credit


def test_cdpo_without_contrast_models_is_refused_by_name():
    with pytest.raises(ValueError, match=r"needs contrast_models=\(positive, negative\)"):
        OARStep(OARSettings(method="cdpo"))
