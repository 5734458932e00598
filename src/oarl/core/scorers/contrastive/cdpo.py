"""cDPO (arXiv 2411.19943, "Critical Tokens Matter", code chenzhiling9954/Critical-Tokens-Matter): a positive
model (tuned on correct rollouts) and a negative one (on wrong rollouts) contrast their logits; a token that the
contrast finds unlikely in a wrong rollout is a critical token, and gets the most of the rollout's penalty."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import eval_mode, head_logits
from oarl.core.scorers.entropy.tokens import CHUNK, advantage_sign, hidden_at
from oarl.core.scorers.registry import ScorerSpec, register_scorer


def _check(opts) -> None:
    if not (isinstance(opts.beta, (int, float)) and opts.beta >= 0):
        raise ValueError(f"cdpo: beta must be a number >= 0, got {opts.beta!r}")


@torch.no_grad()
def contrast_probs(positive: nn.Module, negative: nn.Module, layout: Layout, beta: float) -> Tensor:
    """``softmax((1 + beta) z_pos - beta z_neg)[y_t]`` at each reasoning token (``z``: each model's logits at the
    step that sampled ``y_t``), ``[B, L]`` float32, 0 elsewhere. One forward of each model."""
    mask = layout.reasoning_mask.bool()
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    _, pos, h_pos, taken = hidden_at(positive, layout, mask)
    _, _, h_neg, _ = hidden_at(negative, layout, mask)
    if len(taken) == 0:
        return out
    parts = []
    with eval_mode(positive), eval_mode(negative):
        for i in range(0, len(taken), CHUNK):
            z_pos = head_logits(positive, h_pos[i : i + CHUNK]).float()
            z_neg = head_logits(negative, h_neg[i : i + CHUNK]).float()
            if z_pos.shape[-1] != z_neg.shape[-1]:
                raise ValueError(
                    f"contrast_models have different vocabularies ({z_pos.shape[-1]}, {z_neg.shape[-1]})"
                )
            p = torch.softmax((1 + beta) * z_pos - beta * z_neg, dim=-1)
            parts.append(p.gather(-1, taken[i : i + CHUNK, None]).squeeze(-1))
    out[pos[:, 0], pos[:, 1]] = torch.cat(parts)
    return out


@register_scorer(
    ScorerSpec(
        "cdpo",
        "contrastive",
        frozenset({"contrast_models", "group_rewards"}),
        "experimental",
        "forward",
        why="not yet studied: no training run with it yet (flag testbed or SmolLM2)",
        label="cDPO",
        check=_check,
        output="weights",
    )  # fmt: skip
)
def cdpo_scores(
    model: nn.Module | None,
    layout: Layout,
    contrast_models: tuple[nn.Module, nn.Module] | None = None,
    beta: float = 1.0,
) -> Tensor:
    """cDPO's contrastive-estimation weights (arXiv 2411.19943; the authors' ``calculate_ce_score`` and token-
    weighted DPO loss): ``p_t = softmax((1 + beta) z_pos - beta z_neg)[y_t]`` from ``contrast_models = (positive,
    negative)``; a row above its group's mean reward gets ``w_t = p_t``, a row below it ``w_t = 1 - p_t`` (the
    critical tokens, unlikely under the contrast, carry the penalty), a row at the mean 1. cDPO weights each
    token's log-ratio in a DPO loss by these; here they weight the token's share of the GRPO advantage
    (``A_t = A * w_t``). The policy is not run. ``[B, L]`` float32 weights (``output="weights"``: not gated),
    0 outside ``reasoning_mask``.
    """
    if contrast_models is None or len(contrast_models) != 2:
        raise ValueError("the 'cdpo' scorer needs contrast_models=(positive, negative)")
    mask = layout.reasoning_mask.bool()
    sign = advantage_sign(layout, "cdpo")
    p = contrast_probs(*contrast_models, layout, float(beta))
    w = torch.where(sign[:, None] > 0, p, torch.where(sign[:, None] < 0, 1.0 - p, torch.ones_like(p)))
    return torch.where(mask, w, torch.zeros_like(w)).float()
