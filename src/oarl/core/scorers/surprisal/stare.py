"""STARE (arXiv 2606.19236, code hp-luo/STARE): surprisal-guided token-level advantage reweighting. Within the
batch's positive-advantage tokens the top ``top_p_ratio`` by surprisal ``-log pi(y_t)`` get weight ``W``
(variant O1); variant C2 also gives the top negative-advantage ones ``M``; a closed-loop gate applies the
weights only while the batch's mean entropy is below a target."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.entropy.tokens import advantage_sign, token_stats
from oarl.core.scorers.registry import ScorerSpec, register_scorer

VARIANTS = ("O1", "C2")


def _check(opts) -> None:
    if opts.variant not in VARIANTS:
        raise ValueError(f"stare: variant must be one of {VARIANTS}, got {opts.variant!r}")
    if not (isinstance(opts.top_p_ratio, (int, float)) and 0.0 <= opts.top_p_ratio <= 1.0):
        raise ValueError(f"stare: top_p_ratio must be in [0, 1], got {opts.top_p_ratio!r}")
    for name in ("reweight_w", "reweight_m"):
        v = getattr(opts, name)
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"stare: {name} must be a number > 0 (a weight that keeps the sign), got {v!r}")
    if not isinstance(opts.target_entropy, (int, float)):
        raise ValueError(
            f"stare: target_entropy must be a number (inf: always on), got {opts.target_entropy!r}"
        )


def top_fraction(values: Tensor, candidates: Tensor, ratio: float) -> Tensor:
    """``[B, L]`` bool: the ``ceil(ratio * n)`` (at least 1) largest ``values`` among the ``n`` ``candidates``
    (STARE's selection; none when ``n = 0`` or ``ratio = 0``)."""
    selected = torch.zeros_like(candidates)
    n = int(candidates.sum())
    if n == 0 or ratio <= 0.0:
        return selected
    k = min(n, max(1, int(n * ratio + 0.999999)))  # ceil, as STARE's code rounds it
    top = torch.topk(values[candidates], k=k, largest=True).indices
    flat = candidates.reshape(-1).nonzero().flatten()
    selected.reshape(-1)[flat[top]] = True
    return selected


@register_scorer(
    ScorerSpec(
        "stare",
        "surprisal",
        frozenset({"model", "group_rewards"}),
        "experimental",
        "forward",
        why="flag testbed, heavy chatter, 5 fresh seeds: identical to GRPO (its entropy gate never opened there)",
        label="STARE",
        check=_check,
        output="weights",
    )  # fmt: skip
)
def stare_scores(
    model: nn.Module,
    layout: Layout,
    variant: str = "O1",
    top_p_ratio: float = 0.1,
    reweight_w: float = 1.1,
    reweight_m: float = 0.9,
    target_entropy: float = 0.3,
) -> Tensor:
    """STARE (arXiv 2606.19236): ``w_t = reweight_w`` on ``L+``, the top ``top_p_ratio`` (``ceil``, at least one)
    of the batch's positive-advantage reasoning tokens by surprisal ``-log pi(y_t | y_<t)``; variant ``"C2"``
    also ``reweight_m`` on ``L-``, the same among the negative-advantage ones; 1 elsewhere, and 1 everywhere
    when the gate is off: the gate is on when the mean policy entropy over the batch's reasoning tokens is below
    ``target_entropy`` (``float("inf")``: always on). STARE multiplies the clipped per-token surrogate by
    ``w_t > 0``; since ``w min(ρA, clip(ρ)A) = min(ρ wA, clip(ρ) wA)`` for ``w > 0``, ``A_t = A * w_t`` gives
    the same per-token loss and gradient. The advantage sign is the reward's against its group mean
    (``group_rewards``). STARE's adaptive ``W``/``M`` schedule carries state across steps and is not here.
    ``[B, L]`` float32 weights (``output="weights"``: not gated), 0 outside ``reasoning_mask``.
    """
    reasoning = layout.reasoning_mask.bool()
    weights = reasoning.float()
    sign = advantage_sign(layout, "stare")
    if not reasoning[:, 1:].any():
        return weights
    logp, entropy = token_stats(model, layout, reasoning)
    if not float(entropy[reasoning].double().mean()) < float(target_entropy):
        return weights  # the closed-loop gate is off: plain GRPO
    surprisal = -logp
    l_plus = top_fraction(surprisal, reasoning & (sign > 0)[:, None], float(top_p_ratio))
    weights = torch.where(l_plus, torch.full_like(weights, float(reweight_w)), weights)
    if variant == "C2":
        l_minus = top_fraction(surprisal, reasoning & (sign < 0)[:, None], float(top_p_ratio))
        weights = torch.where(l_minus, torch.full_like(weights, float(reweight_m)), weights)
    return weights
