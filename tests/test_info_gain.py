"""The information-gain scorer: one visibility-masked forward per chunk of prefixes == one plain forward per prefix."""

from __future__ import annotations

import pytest
import torch
from conftest import layout, tiny_lm

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer
from oarl.core.scorers.information.info_gain import cut_points

ROWS = [(3, 7, 2), (2, 9, 1), (4, 5, 3), (2, 6, 0)]


def answer_logprob(model, seq: list[int], suffix: list[int], scored: list[bool]) -> float:
    """``log p`` of the scored suffix tokens after ``seq``: a plain forward of ``seq + suffix``."""
    ids = torch.tensor([seq + suffix])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    return sum(
        float(logp[len(seq) + k - 1, t]) for k, (t, s) in enumerate(zip(suffix, scored, strict=True)) if s
    )


def brute_force(model, ids, am, rm, an, steps: tuple[int, ...] = ()) -> torch.Tensor:
    """Loop over the reasoning tokens (or steps); two plain forwards each."""
    out = torch.zeros(ids.shape, dtype=torch.float64)
    for b in range(len(ids)):
        cols = [j for j in range(ids.shape[1]) if am[b, j]]
        r = [j for j in cols if rm[b, j]]
        a = [j for j in cols if an[b, j]]
        if not r or not a:
            continue
        suffix = [j for j in cols if r[-1] < j <= a[-1]]

        def F(cut: int, b=b, cols=cols, suffix=suffix) -> float:
            seq = [int(ids[b, j]) for j in cols if j <= cut]
            return answer_logprob(
                model, seq, [int(ids[b, j]) for j in suffix], [bool(an[b, j]) for j in suffix]
            )

        # steps: runs of reasoning ending at a delimiter or at the last reasoning token
        groups, cur = [], []
        for j in r:
            cur.append(j)
            if int(ids[b, j]) in steps or j == r[-1]:
                groups.append(cur)
                cur = []
        for grp in groups if steps else [[j] for j in r]:
            first = grp[0]
            before = max(j for j in cols if j < first)
            gain = F(grp[-1]) - F(before)
            for j in grp:
                out[b, j] = gain
    return out


@pytest.fixture(scope="module")
def model():
    return tiny_lm("llama")


@pytest.mark.parametrize("max_copies", [64, 3])
def test_per_token_matches_plain_forwards(model, max_copies):
    ids, am, rm, an = layout(ROWS)
    got = get_scorer("info_gain")(model, ids, am, rm, an, max_copies=max_copies)
    want = brute_force(model, ids, am, rm, an)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
    assert (got[3] == 0).all() and (got[~rm] == 0).all()  # the row without an answer, and outside reasoning
    assert (got[:3][rm[:3]] != 0).all()


def test_per_step_matches_plain_forwards(model):
    ids, am, rm, an = layout(ROWS, vocab=12)  # a small vocabulary, so the delimiters occur
    steps = (3, 5)
    got = get_scorer("info_gain")(model, ids, am, rm, an, step_token_ids=steps)
    want = brute_force(model, ids, am, rm, an, steps)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
    assert (rm & torch.isin(ids, torch.tensor(steps))).sum() >= 2


def test_left_and_right_padding_agree_and_qwen(model):
    qwen = tiny_lm("qwen2")
    for m in (model, qwen):
        right, (ids, am_r, rm, an) = get_scorer("info_gain")(m, *layout(ROWS)), layout(ROWS)
        left_batch = layout(ROWS, pad_side="left")
        left = get_scorer("info_gain")(m, *left_batch)
        for b in range(len(ROWS)):
            torch.testing.assert_close(
                left[b][left_batch[1][b].bool()], right[b][am_r[b].bool()], atol=1e-5, rtol=0
            )
        if m is qwen:
            torch.testing.assert_close(right.double(), brute_force(m, ids, am_r, rm, an), rtol=0, atol=1e-5)


def test_a_bridge_between_reasoning_and_answer_is_read_not_scored(model):
    """Tokens between the reasoning and the answer (``####``) are teacher-forced but not part of log p(answer)."""
    ids, am, rm, an = layout([(3, 6, 3)])
    an = an.clone()
    an[0, 9] = False  # the first 'answer' token becomes a bridge
    got = get_scorer("info_gain")(model, Layout(ids, am, rm, an))
    torch.testing.assert_close(got.double(), brute_force(model, ids, am, rm, an), rtol=0, atol=1e-5)


def test_abs_credit_and_options():
    ids, am, rm, an = layout(ROWS)
    model = tiny_lm("llama")
    g = get_scorer("info_gain")(model, ids, am, rm, an)
    torch.testing.assert_close(get_scorer("info_gain")(model, ids, am, rm, an, credit="abs"), g.abs())
    for bad in ({"credit": "x"}, {"max_copies": 0}, {"step_token_ids": ("a",)}):
        with pytest.raises(ValueError, match="info_gain"):
            get_scorer("info_gain").validate(bad)


def test_cut_points_per_step():
    am = torch.ones(1, 8, dtype=torch.bool)
    rm = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    ids = torch.tensor([[1, 1, 4, 9, 4, 4, 9, 2]])
    after, before = cut_points(am, rm, (9,), ids)
    assert after[0, 2:7].tolist() == [3, 3, 6, 6, 6] and before[0, 2:7].tolist() == [1, 1, 3, 3, 3]
    after, before = cut_points(am, rm, (), ids)
    assert after[0, 2:7].tolist() == [2, 3, 4, 5, 6] and before[0, 2:7].tolist() == [1, 2, 3, 4, 5]
