"""A group scorer through the batch step, with some rows of a group not scored (skipped, answerless), gives the
scored rows the values the scorer gives them on the whole group: an unscored row keeps its tokens and reward."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_lm
from test_bad_inputs import PieceTokenizer, batch

from oarl.batch.reshape import oar_token_advantages
from oarl.batch.rollout import Rollout
from oarl.batch.settings import OARSettings
from oarl.batch.spans import completion_span_masks
from oarl.core.layout import Layout
from oarl.core.scorers import ScorerSpec, get_scorer, register_scorer, unregister_scorer

# PieceTokenizer pieces: 1 "c", 2 "=", 3 "1", 4 ";", 5 "ANSWER", 6 " ", 7 "5" ("ANSWER 5" is the answer span).
ROWS = [
    [1, 2, 3, 4, 5, 6, 7],  # correct, scored
    [1, 2, 4, 4, 5, 6, 7],  # wrong, skipped: shares "c" and "=" with the correct row but not "1"
    [3, 4, 4, 5, 6, 7],  # wrong, scored
    [1, 3, 3, 4],  # wrong, no answer span: shares "c" and "1" with the correct row
    [2, 2, 4, 5, 6, 7],  # second group, scored
    [1, 4, 5, 6, 7],  # second group, scored
]
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1])
REWARDS = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
SKIP = torch.tensor([False, True, False, False, False, False])


def full_group_layout(pids, pmask, cids, cmask) -> Layout:
    """Every row as the scorer would see it with nothing left out: its own reasoning, answer and completion."""
    spans = completion_span_masks(PieceTokenizer(), cids, cmask)
    pad = torch.zeros_like(pids, dtype=torch.bool)
    cat = lambda p, c: torch.cat([p, c], dim=1)  # noqa: E731
    return Layout(
        cat(pids, cids), cat(pmask, cmask), cat(pad, spans.reasoning), cat(pad, spans.answer),
        GROUPS, REWARDS, cat(pad, cmask.bool()),
    )  # fmt: skip


@pytest.mark.parametrize("method", ["ktae", "tree"])
def test_unscored_rows_do_not_change_a_group_scorers_values(method):
    pids, pmask, cids, cmask = batch(ROWS)
    pids[:] = pids[0]  # one prompt per group, as a trainer gives it (the tree's prefixes start with it)
    seen = []

    @register_scorer(ScorerSpec("spy", "group", frozenset({"group_rewards"}), "control", "none"))
    def spy(model, layout: Layout) -> torch.Tensor:
        """The real scorer, recorded."""
        seen.append((layout, get_scorer(method)(model, layout)))
        return seen[-1][1]

    try:
        adv = torch.tensor([1.0, 0, -1, -1, 1, -1])
        assert torch.equal(adv == 0, SKIP)  # the zero-advantage skip is the rows SKIP names
        rollout = Rollout(pids, pmask, cids, cmask, adv, group_ids=GROUPS, rewards=REWARDS)
        res = oar_token_advantages(tiny_lm(), PieceTokenizer(), rollout, OARSettings(method="spy"))
    finally:
        unregister_scorer("spy")
    assert res.scored.tolist() == [True, False, True, False, True, True]
    ((layout, got),) = seen
    assert len(layout.input_ids) == len(ROWS)  # every row is context: each group has a scored row
    want = get_scorer(method)(None, full_group_layout(pids, pmask, cids, cmask))
    rows = res.scored
    assert (want[rows] != 0).any()
    torch.testing.assert_close(got[rows], want[rows], rtol=0, atol=1e-7)


def test_ktae_counts_an_unscored_rows_tokens():
    """The issue's case: rewards 1, 0, 0; a token of the correct row shared by one wrong row. That wrong row
    unscored (reasoning blanked) must not look like a row without the token."""
    ids = torch.tensor([[9, 1, 2], [9, 1, 3], [9, 4, 3]])
    am = torch.ones_like(ids)
    rm = torch.tensor([[0, 1, 1], [0, 1, 1], [0, 1, 1]], dtype=torch.bool)
    an, comp = torch.zeros_like(rm), rm.clone()
    g, r = torch.zeros(3, dtype=torch.long), torch.tensor([1.0, 0.0, 0.0])
    ktae = get_scorer("ktae")
    visible = ktae(None, Layout(ids, am, rm, an, g, r, comp))
    blank = rm.clone()
    blank[1] = False  # row 1 not scored: the batch step blanks its reasoning, its completion stays
    unscored = ktae(None, Layout(ids, am, blank, an, g, r, comp))
    torch.testing.assert_close(unscored[0], visible[0])
    assert abs(float(visible[0, 1])) < 0.1  # token 1: in the correct row and one of two wrong rows


def test_layout_checks_the_completion_mask():
    ids = torch.tensor([[1, 2, 0]])
    am = torch.tensor([[1, 1, 0]])
    rm = torch.tensor([[False, True, False]])
    with pytest.raises(ValueError, match="completion_mask has shape"):
        Layout(ids, am, rm, torch.zeros_like(rm), completion_mask=torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="completion_mask marks padded"):
        Layout(ids, am, rm, torch.zeros_like(rm), completion_mask=torch.ones(1, 3, dtype=torch.bool))
    assert Layout(ids, am, rm, torch.zeros_like(rm)).generated.tolist() == rm.tolist()
