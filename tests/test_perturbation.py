"""OAR-P fast path against the slow reference (full forward, full logits, one masked copy at a time)."""

import pytest
import torch
from conftest import layout, tiny_lm

from oarl import perturbation_scores
from oarl.core.layout import Layout
from oarl.core.scorers import naive_perturbation_scores

ROWS = [(4, 9, 3), (2, 5, 2), (6, 12, 4)]  # different lengths -> padding in every row but the longest


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("pad_side", ["right", "left"])
@pytest.mark.parametrize("probe", ["lt_logits", "as_mean", "as_joint"])
def test_matches_slow_reference(arch, pad_side, probe):
    model = tiny_lm(arch)
    batch = layout(ROWS, pad_side)
    fast = perturbation_scores(model, Layout(*batch), probe=probe, max_batch_tokens=24)
    slow = naive_perturbation_scores(model, *batch, probe=probe)
    assert slow.abs().max() > 1e-4  # the reference is not trivially zero
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=0)


def test_zero_outside_reasoning_and_nonzero_inside(qwen):
    ids, am, rm, an = layout(ROWS)
    s = perturbation_scores(qwen, Layout(ids, am, rm, an))
    assert (s[~rm] == 0).all()  # exact: only reasoning positions are ever written
    assert (s[rm] != 0).float().mean() > 0.9


def test_padding_side_does_not_change_scores(qwen):
    right = perturbation_scores(qwen, Layout(*layout(ROWS, "right")))
    left = perturbation_scores(qwen, Layout(*layout(ROWS, "left")))
    _, am_r, *_ = layout(ROWS, "right")
    _, am_l, *_ = layout(ROWS, "left")
    torch.testing.assert_close(right[am_r.bool()], left[am_l.bool()], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("budget", [1, 7, 100_000])
def test_memory_budget_does_not_change_scores(qwen, budget):
    batch = layout(ROWS)
    torch.testing.assert_close(
        perturbation_scores(qwen, Layout(*batch), max_batch_tokens=budget),
        perturbation_scores(qwen, Layout(*batch), max_batch_tokens=4096),
        atol=1e-5,
        rtol=1e-4,
    )


def test_custom_mask_token_matches_reference(qwen):
    batch = layout(ROWS[:1])
    fast = perturbation_scores(qwen, Layout(*batch), mask_token_id=7)
    slow = naive_perturbation_scores(qwen, *batch, mask_token_id=7)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=0)
    assert not torch.allclose(fast, perturbation_scores(qwen, Layout(*batch)))


def test_row_without_answer_scores_zero(qwen):
    ids, am, rm, an = layout(ROWS)
    an[1] = False
    s = perturbation_scores(qwen, Layout(ids, am, rm, an))
    assert (s[1] == 0).all() and (s[0] != 0).any()  # exact: a row without a probe is skipped, left at 0


def test_keeps_train_mode_and_clear_errors(qwen):
    ids, am, rm, an = layout(ROWS)
    qwen.train()
    try:  # `qwen` is shared by the session: back to eval mode even when this test fails
        perturbation_scores(qwen, Layout(ids, am, rm, an))
        assert qwen.training and all(m.training for m in qwen.modules())
    finally:
        qwen.eval()
    with pytest.raises(ValueError, match="overlap"):
        perturbation_scores(qwen, Layout(ids, am, rm, rm))
    with pytest.raises(ValueError, match="shape"):
        perturbation_scores(qwen, Layout(ids, am[:, :-1], rm, an))
    with pytest.raises(ValueError, match="unknown probe"):
        perturbation_scores(qwen, Layout(ids, am, rm, an), probe="nope")
