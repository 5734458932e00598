"""GTPO (``gtpo``) and the 80/20 rule (``high_entropy``) against plain-loop references of their formulas, and
``high_entropy`` against TRL's own ``get_high_entropy_mask``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import layout, tiny_lm
from scorer_refs import row_stats, signs

from oarl.batch.credit import score_and_gate
from oarl.batch.settings import OARSettings
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer
from oarl.core.scorers.entropy.tokens import token_stats

ROWS = [(3, 7, 2), (2, 9, 1), (4, 5, 3), (2, 6, 2), (3, 8, 1), (2, 4, 2)]
GROUPS = torch.tensor([0, 0, 0, 1, 1, 1])
REWARDS = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])


@pytest.fixture(scope="module")
def model():
    return tiny_lm("llama", seed=4)


def _batch(pad_side="right"):
    ids, am, rm, an = batch = layout(ROWS, pad_side=pad_side, seed=3)
    return batch, Layout(*batch, group_ids=GROUPS, rewards=REWARDS)


@pytest.mark.parametrize("alphas", [(0.5, 0.5), (1.0, 0.3)])
def test_gtpo_matches_the_papers_formula_position_by_position(model, alphas):
    (ids, am, rm, an), lay = _batch("left")
    a1, a2 = alphas
    got = get_scorer("gtpo")(model, lay, alpha1=a1, alpha2=a2)
    gen = rm | an
    stats = [row_stats(model, ids, am, b)[1] for b in range(len(ROWS))]
    sign = signs(GROUPS, REWARDS)
    want = torch.zeros_like(got, dtype=torch.float64)
    for b in range(len(ROWS)):
        same = [k for k in range(len(ROWS)) if GROUPS[k] == GROUPS[b] and sign[k] == sign[b]]
        cols = {k: gen[k].nonzero().flatten().tolist() for k in same}
        for t, col in enumerate(cols[b]):
            if not rm[b, col]:
                continue
            if sign[b] == 0:
                want[b, col] = 1.0
                continue
            alive = [k for k in same if t < len(cols[k])]
            x = {k: max(stats[k][cols[k][t]], 1e-6) for k in alive}
            if sign[b] < 0:
                x = {k: 1 / v for k, v in x.items()}
            want[b, col] = a1 + a2 * len(alive) * x[b] / sum(x.values())
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_gtpo_weights_average_one_per_position_and_skip_the_gate(model):
    (ids, am, rm, an), lay = _batch()
    w = get_scorer("gtpo")(model, lay)
    # the correct rows of group 0 (rows 0, 2) at their first reasoning token, position 0 of each completion
    first = [int(rm[b].nonzero()[0]) for b in (0, 2)]
    assert abs(float(w[0, first[0]] + w[2, first[1]]) / 2 - 1.0) < 1e-5
    credit = score_and_gate(model, lay, OARSettings(method="gtpo"))
    torch.testing.assert_close(credit.weights, torch.where(rm, w, torch.ones_like(w)))  # not gated


@pytest.mark.parametrize("quantile", [0.2, 0.5, 1.0])
def test_high_entropy_keeps_the_batchs_top_quantile(model, quantile):
    (ids, am, rm, an), lay = _batch()
    got = get_scorer("high_entropy")(model, lay, quantile=quantile)
    ent = {}
    for b in range(len(ROWS)):
        h = row_stats(model, ids, am, b)[1]
        ent.update({(b, c): v for c, v in h.items() if rm[b, c]})
    values = sorted(ent.values())
    threshold = float(torch.quantile(torch.tensor(values, dtype=torch.float64), 1 - quantile))
    for (b, c), h in ent.items():
        if abs(h - threshold) > 1e-5:  # away from the threshold: rounding cannot flip it
            assert float(got[b, c]) == float(h >= threshold), (b, c)
    assert (got[~rm] == 0).all() and set(got[rm].tolist()) <= {0.0, 1.0}
    kept = int(got[rm].sum())
    assert abs(kept - quantile * len(values)) <= 1.0 + 1e-9  # the top fraction of the batch's tokens


def test_high_entropy_is_trls_get_high_entropy_mask(model):
    from trl import GRPOTrainer

    (ids, am, rm, an), lay = _batch()
    got = get_scorer("high_entropy")(model, lay, quantile=0.2)
    _, ent = token_stats(model, lay, rm)
    one_process = SimpleNamespace(
        accelerator=SimpleNamespace(pad_across_processes=lambda t, **_: t, gather=lambda t: t)
    )
    trl_mask = GRPOTrainer.get_high_entropy_mask(one_process, ent, rm.long(), 1 - 0.2)
    assert torch.equal(got.bool(), trl_mask)  # exact: the same quantile of the same entropies
