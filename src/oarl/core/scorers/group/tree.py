"""TEMPO's group prefix tree (arXiv 2509.18314): the G completions of a prompt share prefixes, and a token where
they branch is credited with how much taking it changed the group's mean reward. No model call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.registry import ScorerSpec, register_scorer

CREDITS = ("aligned", "abs")


def _check(opts) -> None:
    if opts.credit not in CREDITS:
        raise ValueError(f"tree: credit must be one of {CREDITS}, got {opts.credit!r}")


def prefix_values(tokens: Tensor, valid: Tensor, rewards: Tensor) -> tuple[Tensor, Tensor]:
    """Values along each row's path in the prefix tree of one group.

    Args:
        tokens, valid: ``[G, N]`` each row's attended tokens, left-aligned (``valid`` marks them).
        rewards: ``[G]`` float64; non-finite rewards are left out of every mean.

    Returns:
        ``values[G, N]``: ``V(row[:i + 1])``, the mean finite reward of the rows whose sequence starts with
        ``row[:i + 1]`` (NaN where there is none, or past the row's end), and ``root[G]``: ``V`` of the empty
        prefix, the group's mean finite reward.
    """
    same = (tokens[:, None, :] == tokens[None, :, :]) & valid[:, None, :] & valid[None, :, :]
    through = (
        same.long().cumprod(-1).bool()
    )  # [G, G', N]: row g' passes through row g's prefix of length i + 1
    finite = torch.isfinite(rewards)
    r = torch.where(finite, rewards, torch.zeros_like(rewards))
    count = (through & finite[None, :, None]).sum(1).double()
    total = (through.double() * r[None, :, None]).sum(1)
    values = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))
    # No Python branch and no new tensor: the root stays on the rewards' device (NaN where no reward is finite).
    root = torch.where(
        finite.any(), r.sum() / finite.sum().clamp(min=1), torch.full_like(r.sum(), float("nan"))
    )
    return values, root.expand(tokens.shape[0])


@register_scorer(
    ScorerSpec(
        "tree",
        "group",
        frozenset({"group_rewards"}),
        "experimental",
        "none",
        check=_check,
        why="free; beats OAR-P by +0.057 [+0.021, +0.092] AUC but not GRPO (+0.012 / +0.017, 23-32% of the oracle's gain) on the flag task, 5 seeds (docs/credit_study.md)",
        label="Tree",
    )  # fmt: skip
)
def tree_scores(
    model: nn.Module | None,
    layout: Layout,
    credit: str = "aligned",
) -> Tensor:
    """TEMPO's prefix-tree credit (arXiv 2509.18314): ``dV_t = V(prefix <= t) - V(prefix < t)``, where ``V`` of a
    prefix is the mean reward of the group's completions that start with it (``layout.group_ids``, ``rewards``).

    ``dV_t`` is 0 wherever every completion through ``prefix < t`` continues with token t (no branching), so only
    branch tokens get credit; along a row the credits sum to ``V(row) - V(root)``: its reward minus the group
    mean (unless another completion extends it), the un-normalised GRPO advantage. TEMPO adds ``dV_t`` to the
    advantage; OAR's gate can only reweight ``A`` within the row, so ``credit="aligned"`` (default) scores
    ``dV_t * sign(r - V(root))``: the branches that moved the group toward this row's outcome are boosted and
    those that moved it against are suppressed below the unbranched tokens (a correct row's good decisions,
    a wrong row's mistakes). ``credit="abs"``: ``|dV_t|``, sign-blind. Prefixes are over the attended tokens
    (prompt included: rows of one group share it). Rows whose reward is not finite score 0 and are left out of
    every ``V``. Returns ``[B, L]`` float32, 0 outside ``reasoning_mask``.
    """
    ids, attn, reasoning = layout.input_ids, layout.attention_mask.bool(), layout.reasoning_mask.bool()
    if layout.group_ids is None or layout.rewards is None:
        raise ValueError("the 'tree' scorer needs layout.group_ids and layout.rewards (needs group_rewards)")
    scores = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    rewards = layout.rewards.double()
    n = attn.sum(-1)
    # Attended tokens left-aligned, so that column i is the (i + 1)-th token whatever the padding side.
    order = torch.where(attn, 0, 1).argsort(dim=-1, stable=True)
    tokens = ids.gather(1, order)
    width = int(n.max()) if len(n) else 0
    tokens, valid = tokens[:, :width], torch.arange(width, device=ids.device) < n[:, None]
    for g in layout.group_ids.unique():
        rows = (layout.group_ids == g).nonzero().flatten()
        values, root = prefix_values(tokens[rows], valid[rows], rewards[rows])
        before = torch.cat([root[:, None], values[:, :-1]], dim=1)
        dv = torch.nan_to_num(values - before, nan=0.0)
        if credit == "aligned":
            dv = dv * torch.sign(rewards[rows] - root)[:, None]
        else:
            dv = dv.abs()
        dv = torch.where(torch.isfinite(rewards[rows])[:, None], dv, torch.zeros_like(dv))
        full = torch.zeros(len(rows), ids.shape[1], dtype=dv.dtype, device=dv.device)
        full.scatter_(1, order[rows, :width], torch.where(valid[rows], dv, torch.zeros_like(dv)))
        scores[rows] = full.float()
    return scores * reasoning
