"""The group prefix-tree scorer (TEMPO): a slow explicit prefix dictionary, hand-worked groups, the batch step."""

from __future__ import annotations

import pytest
import torch
from conftest import PAD

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer


def batch(rows: list[tuple[list[int], list[int]]], pad_side: str = "right"):
    """Rows of (prompt, completion) token lists; the completion is all reasoning (no answer)."""
    L = max(len(p) + len(c) for p, c in rows)
    B = len(rows)
    ids = torch.full((B, L), PAD, dtype=torch.long)
    am = torch.zeros(B, L, dtype=torch.long)
    rm = torch.zeros(B, L, dtype=torch.bool)
    for b, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        s = 0 if pad_side == "right" else L - n
        ids[b, s : s + n] = torch.tensor(p + c)
        am[b, s : s + n] = 1
        rm[b, s + len(p) : s + n] = True
    return ids, am, rm, torch.zeros_like(rm)


def brute_force(ids, am, rm, groups, rewards, credit="aligned") -> torch.Tensor:
    """Enumerate every prefix of every row explicitly: V(prefix) = mean reward of the group's rows under it."""
    out = torch.zeros(ids.shape, dtype=torch.float64)
    seqs = [[int(t) for t, a in zip(ids[b], am[b], strict=True) if a] for b in range(len(ids))]
    cols = [[j for j in range(ids.shape[1]) if am[b, j]] for b in range(len(ids))]
    for b in range(len(ids)):
        mates = [o for o in range(len(ids)) if groups[o] == groups[b] and rewards[o] == rewards[o]]
        if rewards[b] != rewards[b]:
            continue

        def value(prefix: list[int], mates=mates) -> float:
            under = [float(rewards[o]) for o in mates if seqs[o][: len(prefix)] == prefix]
            return sum(under) / len(under)

        root = value([])
        for i, col in enumerate(cols[b]):
            dv = value(seqs[b][: i + 1]) - value(seqs[b][:i])
            if credit == "aligned":
                dv *= (rewards[b] > root) - (rewards[b] < root)
            else:
                dv = abs(dv)
            out[b, col] = dv if rm[b, col] else 0.0
    return out


GROUP = [  # one prompt [7, 8], four completions branching at the first and the third token
    ([7, 8], [1, 2, 3, 4]),
    ([7, 8], [1, 2, 5, 4]),
    ([7, 8], [1, 2, 5, 6, 9]),
    ([7, 8], [3, 2, 3]),
]


def test_a_hand_worked_group():
    ids, am, rm, an = batch(GROUP)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    lay = Layout(ids, am, rm, an, group_ids=torch.zeros(4, dtype=torch.long), rewards=rewards)
    s = get_scorer("tree")(None, lay, credit="abs")
    # root 1/2; [1] 1/3 (rows 0-2), [3] 1; [1,2,3] 1, [1,2,5] 0; the rest unbranched.
    expected = torch.zeros_like(s)
    expected[0, 2], expected[1, 2], expected[2, 2], expected[3, 2] = 1 / 6, 1 / 6, 1 / 6, 1 / 2
    expected[0, 4], expected[1, 4], expected[2, 4] = 2 / 3, 1 / 3, 1 / 3
    torch.testing.assert_close(s, expected)
    aligned = get_scorer("tree")(None, lay)  # sign of r - 1/2: + for rows 0 and 3, - for rows 1 and 2
    signed = torch.zeros_like(s)
    signed[0, 2], signed[0, 4] = -1 / 6, 2 / 3  # row 0 took a bad first branch and a good second one
    signed[1, 2], signed[1, 4] = 1 / 6, 1 / 3
    signed[2, 2], signed[2, 4] = 1 / 6, 1 / 3
    signed[3, 2] = 1 / 2
    torch.testing.assert_close(aligned, signed)


@pytest.mark.parametrize("credit", ["aligned", "abs"])
@pytest.mark.parametrize("pad_side", ["right", "left"])
def test_matches_the_brute_force_prefix_dictionary(credit, pad_side):
    g = torch.Generator().manual_seed(0)
    rows, groups = [], []
    for group in range(3):
        prompt = torch.randint(1, 9, (2 + group,), generator=g).tolist()
        for _ in range(5):  # tokens from a 3-letter alphabet: many shared prefixes, and some equal rows
            rows.append(
                (
                    prompt,
                    torch.randint(1, 4, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g).tolist(),
                )
            )
            groups.append(group)
    rewards = torch.randint(0, 3, (len(rows),), generator=g).double()
    rewards[4] = float("nan")  # an unscorable completion: scores 0, left out of every mean
    ids, am, rm, an = batch(rows, pad_side)
    lay = Layout(ids, am, rm, an, group_ids=torch.tensor(groups), rewards=rewards)
    got = get_scorer("tree")(None, lay, credit=credit)
    want = brute_force(ids, am, rm, groups, rewards.tolist(), credit)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6)
    assert (got[~rm] == 0).all() and (got[4] == 0).all()
    assert (got != 0).sum() > 5  # the sample branches


def test_aligned_credit_sums_to_the_centred_reward():
    """Telescoping: along a row the credits add up to r - mean (no row extends another; prompt unbranched)."""
    ids, am, rm, an = batch(GROUP)
    rewards = torch.tensor([1.0, 0.0, 0.5, 1.0])
    lay = Layout(ids, am, rm, an, group_ids=torch.zeros(4, dtype=torch.long), rewards=rewards)
    s = get_scorer("tree")(None, lay, credit="abs")
    signed = get_scorer("tree")(None, lay)
    centred = rewards - rewards.mean()
    torch.testing.assert_close((signed * torch.sign(centred)[:, None]).sum(-1), centred.float())
    assert (s >= 0).all()


def test_needs_groups_and_checks_its_option():
    ids, am, rm, an = batch(GROUP)
    with pytest.raises(ValueError, match="group_ids"):
        get_scorer("tree")(None, Layout(ids, am, rm, an))
    with pytest.raises(ValueError, match="credit must be one of"):
        get_scorer("tree").validate({"credit": "signed"})


def test_root_stays_on_the_rewards_device():
    """A group whose rewards are all non-finite has a NaN root on the rewards' device (it was made on the CPU,
    failing on CUDA). The meta device stands in for CUDA: nothing in prefix_values may leave it."""
    from oarl.core.scorers.group.tree import prefix_values

    tokens = torch.tensor([[1, 2, 3], [1, 2, 4]], device="meta")
    valid = torch.ones(2, 3, dtype=torch.bool, device="meta")
    rewards = torch.tensor([float("nan"), float("inf")], dtype=torch.float64).to("meta")
    values, root = prefix_values(tokens, valid, rewards)
    assert values.device.type == root.device.type == "meta"
    # and on the CPU the all-non-finite group still gives a NaN root and all-NaN values
    tokens, valid = torch.tensor([[1, 2, 3], [1, 2, 4]]), torch.ones(2, 3, dtype=torch.bool)
    values, root = prefix_values(tokens, valid, torch.tensor([float("nan"), float("inf")]).double())
    assert torch.isnan(root).all() and torch.isnan(values).all()
    values, root = prefix_values(tokens, valid, torch.tensor([1.0, 0.0]).double())
    assert torch.allclose(root, torch.tensor([0.5, 0.5]).double())
