"""The high-entropy minority ("Beyond the 80/20 Rule", arXiv 2506.01939): the policy gradient kept only on the
tokens whose entropy is in the batch's top ``quantile`` (TRL's ``top_entropy_quantile``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.entropy.tokens import token_stats
from oarl.core.scorers.registry import ScorerSpec, register_scorer


def _check(opts) -> None:
    q = opts.quantile
    if not (isinstance(q, (int, float)) and 0.0 < q <= 1.0):
        raise ValueError(f"high_entropy: quantile must be in (0, 1] (the top fraction kept), got {q!r}")


@register_scorer(
    ScorerSpec(
        "high_entropy",
        "entropy",
        frozenset({"model"}),
        "experimental",
        "forward",
        why="flag testbed, heavy chatter, 5 fresh seeds: -0.128 [-0.181, -0.076] AUC vs GRPO (it trains on the "
        "chatter; docs/credit_study.md, third study)",
        label="80/20",
        check=_check,
        output="weights",
    )  # fmt: skip
)
def high_entropy_scores(
    model: nn.Module,
    layout: Layout,
    quantile: float = 0.2,
) -> Tensor:
    """80/20 rule (arXiv 2506.01939): weight 1 at the reasoning tokens whose entropy ``H_t`` is at least the
    batch's ``1 - quantile`` quantile (``torch.quantile``, linear, over every reasoning token of the batch, as
    TRL's ``get_high_entropy_mask``), 0 at the rest. The paper (and TRL) multiply the per-token loss by this mask;
    the GRPO surrogate is linear in ``A_t``, so ``A_t = A * w_t`` gives the same per-token gradient
    (``d/dθ [w_t ρ_t A] = w_t d/dθ [ρ_t A]``, clipping included since ``w_t >= 0``); the KL term, which TRL masks
    too, is left on every token. ``[B, L]`` float32 weights (``output="weights"``: not gated), 0 outside
    ``reasoning_mask``.
    """
    reasoning = layout.reasoning_mask.bool()
    weights = torch.zeros(reasoning.shape, dtype=torch.float32, device=reasoning.device)
    if not reasoning[:, 1:].any():
        return weights
    _, entropy = token_stats(model, layout, reasoning)
    values = entropy[reasoning]
    threshold = torch.quantile(values, 1.0 - float(quantile))
    return torch.where(reasoning & (entropy >= threshold), torch.ones_like(weights), weights)
