"""GTPO (arXiv 2508.04349, "GTPO and GRPO-S: Token and Sequence-Level Reward Shaping with Policy Entropy"):
each token's reward is weighted by its share of the entropy at its position among the group's sequences of the
same outcome (the paper's ratio ``H_{i,t} / sum_k H_{k,t}``, ``k`` over sequences)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.entropy.tokens import advantage_sign, token_stats
from oarl.core.scorers.registry import ScorerSpec, register_scorer

#: Entropy below this counts as this (the wrong rows' ``1 / H`` share stays finite).
EPS = 1e-6


def _check(opts) -> None:
    for name in ("alpha1", "alpha2"):
        v = getattr(opts, name)
        if not (isinstance(v, (int, float)) and v >= 0):
            raise ValueError(f"gtpo: {name} must be a number >= 0, got {v!r}")


def gtpo_weights(entropy: Tensor, alive: Tensor, correct: bool, alpha1: float, alpha2: float) -> Tensor:
    """GTPO's weights for one outcome class of one group: ``entropy``, ``alive``: ``[n, T]`` (row k's token at
    completion position t, and whether row k has one). ``w_{i,t} = alpha1 + alpha2 * d_t * x_{i,t} / sum_k
    x_{k,t}`` over the ``d_t`` rows alive at t, ``x = H`` (correct rows) or ``1 / H`` (wrong rows). ``[n, T]``
    float64, 0 where not alive."""
    h = entropy.double().clamp(min=EPS)
    x = torch.where(alive, h if correct else 1.0 / h, torch.zeros_like(h))
    d = alive.sum(0, keepdim=True).double()
    total = x.sum(0, keepdim=True)
    share = torch.where(total > 0, x / total.clamp(min=1e-300), torch.zeros_like(x))
    return torch.where(alive, alpha1 + alpha2 * d * share, torch.zeros_like(x))


@register_scorer(
    ScorerSpec(
        "gtpo",
        "entropy",
        frozenset({"model", "group_rewards"}),
        "experimental",
        "forward",
        why="flag testbed, heavy chatter, 5 fresh seeds: -0.020 [-0.049, +0.009] AUC vs GRPO (docs/credit_study.md, third study)",
        label="GTPO",
        check=_check,
        output="weights",
    )  # fmt: skip
)
def gtpo_scores(
    model: nn.Module,
    layout: Layout,
    alpha1: float = 0.5,
    alpha2: float = 0.5,
) -> Tensor:
    """GTPO's entropy-weighted token credit (arXiv 2508.04349), as weights of the sequence advantage:
    ``w_{i,t} = alpha1 + alpha2 * d_t * H_{i,t} / sum_k H_{k,t}`` for a row above its group's mean reward (``k``
    over those rows that have a completion token at position ``t``, ``d_t`` of them), and ``alpha1 + alpha2 *
    d_t * H_{i,t}^-1 / sum_k H_{k,t}^-1`` for a row below it (its confident tokens carry the blame).

    ``H_{i,t}`` is the policy's entropy at row i's ``t``-th generated token (``layout.generated``; one forward
    over the group). GTPO's token reward is ``r_i * w_{i,t}`` for ``r = +-1`` (its Eq. for ``r~_{i,t}`` with
    ``alpha1 r_i`` plus ``alpha2`` times the share); GTPO then normalises the token rewards over the group,
    where oarl multiplies the group-normalised sequence advantage by ``w`` (``A_t = A * w_{i,t}``): the same
    entropy shares, the token-level mean/std normalisation left out. With ``alpha1 + alpha2 = 1`` each position's
    weights average 1 over its rows. Rows at their group's mean (``A = 0``) get 1. ``[B, L]`` float32 weights
    at the reasoning tokens, 0 elsewhere (``output="weights"``: not gated).
    """
    ids, reasoning, generated = layout.input_ids, layout.reasoning_mask.bool(), layout.generated
    sign = advantage_sign(layout, "gtpo")
    weights = torch.where(
        reasoning, torch.ones(ids.shape, device=ids.device), torch.zeros(ids.shape, device=ids.device)
    )
    scored = (sign != 0) & reasoning.any(-1)
    if not scored.any():
        return weights
    alive_rows = (sign != 0) & generated.any(-1)
    _, entropy = token_stats(model, layout, generated & alive_rows[:, None])
    for g in layout.group_ids[scored].unique():
        for s in (1.0, -1.0):
            rows = ((layout.group_ids == g) & (sign == s) & generated.any(-1)).nonzero().flatten()
            if len(rows) == 0:
                continue
            gen = generated[rows]
            T = int(gen.sum(-1).max())
            # each row's generated tokens, left-aligned by completion position (padding-independent)
            pos = gen.long().cumsum(-1) - 1
            h = torch.zeros(len(rows), T, dtype=torch.float32, device=ids.device)
            alive = torch.zeros(len(rows), T, dtype=torch.bool, device=ids.device)
            r, c = gen.nonzero(as_tuple=True)
            h[r, pos[r, c]] = entropy[rows][r, c]
            alive[r, pos[r, c]] = True
            w = gtpo_weights(h, alive, s > 0, float(alpha1), float(alpha2))
            row_w = torch.zeros(gen.shape, dtype=torch.float64, device=ids.device)
            row_w[r, c] = w[r, pos[r, c]]
            weights[rows] = torch.where(reasoning[rows], row_w.float(), weights[rows])
    return weights
