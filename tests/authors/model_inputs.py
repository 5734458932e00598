"""Inputs the model-based comparisons share: a plain Hugging Face forward (the "their side" of every
comparison reads log-probabilities and entropies from it, as verl's actor does at temperature 1), GRPO
advantages, and a layout whose last completion tokens are the answer."""

from __future__ import annotations

import torch
from authors_common import GroupBatch

from oarl.core.layout import Layout


@torch.no_grad()
def forward_stats(model, ids: torch.Tensor, attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_prob, entropy)``, ``[B, L]`` float32: at column t the log-probability of ``ids[:, t]`` and the
    entropy of the distribution that predicted it (column 0: 0). Right padding (positions from 0)."""
    logits = model(input_ids=ids, attention_mask=attn).logits.float()[:, :-1]
    logp = torch.log_softmax(logits, -1)
    lp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    ent = -(logp.exp() * logp).sum(-1)
    z = torch.zeros_like(lp[:, :1])
    return torch.cat([z, lp], 1), torch.cat([z, ent], 1)


def grpo_advantages(lay: Layout, eps: float = 1e-6) -> torch.Tensor:
    """``[B]``: ``(r - mean_group) / (std_group + eps)`` (verl's GRPO outcome advantage, unbiased std)."""
    r = lay.rewards.double()
    adv = torch.zeros_like(r)
    for g in lay.group_ids.unique():
        m = lay.group_ids == g
        adv[m] = (r[m] - r[m].mean()) / (r[m].std() + eps)
    return adv


def with_answer(gb: GroupBatch, n: int = 2) -> Layout:
    """The same rows with the last ``n`` completion tokens as the answer (no longer reasoning)."""
    lay = gb.layout
    rm, an = lay.reasoning_mask.clone(), lay.answer_mask.clone()
    for b, cols in enumerate(gb.completion_cols):
        rm[b, cols[-n:]] = False
        an[b, cols[-n:]] = True
    return Layout(lay.input_ids, lay.attention_mask, rm, an, group_ids=lay.group_ids, rewards=lay.rewards,
                  completion_mask=lay.reasoning_mask)  # fmt: skip
