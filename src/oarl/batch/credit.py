"""The one score-and-gate: a registered scorer on a :class:`~oarl.core.layout.Layout`, then the bi-level gate
over the reasoning tokens, with the non-finite fallback.

Every path calls it: the trainer (:func:`oarl.batch.reshape.oar_token_advantages`), the testbed, the viewer
(:func:`oarl.lab.viz.attribution.score_methods`), the demo's attribution strip and the benchmarks. A row whose
scores (or weights) are not finite keeps uniform weights and is flagged, wherever it is scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from oarl.batch.settings import OARSettings
from oarl.core.gating import BETA, FLOOR, TAU, bilevel_weights
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer


@dataclass(frozen=True)
class Credit:
    """One scorer's credit on a batch: ``scores`` and ``weights`` ``[n, L]`` (float32), ``nonfinite`` ``[n]``
    bool (rows whose scores or weights were not finite: their weights are uniform)."""

    scores: Tensor
    weights: Tensor
    nonfinite: Tensor


def gate_scores(
    scores: Tensor, mask: Tensor, tau: float = TAU, beta: float = BETA, floor: float = FLOOR
) -> tuple[Tensor, Tensor]:
    """Gate ``scores`` into weights (:func:`oarl.core.gating.bilevel_weights`); rows with a non-finite score or
    weight get uniform weights instead.

    ``scores``, ``mask``: ``[B, L]``. Returns ``weights[B, L]`` (float32, finite, each row sums to its mask
    count; 1 outside ``mask``) and ``nonfinite[B]`` (bool).
    """
    mask = mask.bool()
    bad = (mask & ~torch.isfinite(scores)).any(-1)
    clean_mask = mask & ~bad.unsqueeze(-1)
    w = bilevel_weights(scores.where(clean_mask, 0.0), clean_mask, tau, beta, floor)
    late = ~torch.isfinite(w).all(-1)  # cannot happen for finite scores; kept as the last line of defence
    if late.any():
        w = torch.where(late.unsqueeze(-1), torch.ones_like(w), w)
    return w, bad | late


def ungated_weights(weights: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """A ``output="weights"`` scorer's tensor as weights, not gated: ``weights`` on ``mask``, 1 elsewhere; rows
    with a non-finite weight get uniform weights (as :func:`gate_scores`). ``[B, L]`` -> ``([B, L], [B])``."""
    mask = mask.bool()
    bad = (mask & ~torch.isfinite(weights)).any(-1)
    w = torch.where(mask & ~bad.unsqueeze(-1), weights.float(), torch.ones_like(weights, dtype=torch.float32))
    return w, bad


def score_and_gate(
    model: nn.Module | None,
    layout: Layout,
    settings: OARSettings,
    *,
    generator: torch.Generator | None = None,
    oracle_mask: Tensor | None = None,
    reward_fn: Callable[..., Any] | None = None,
    reference_model: nn.Module | None = None,
    contrast_models: tuple[nn.Module, nn.Module] | None = None,
    tokenizer: Any = None,
    rows: Tensor | None = None,
    start: int = 0,
) -> Credit:
    """Score ``layout`` with ``settings.method`` and gate the scores over its reasoning tokens.

    Args:
        model: the policy (None for a model-free scorer).
        layout: ``[B, L]`` rows (:func:`oarl.batch.rollout_layout.rollout_layout` / ``encode_text_pairs``).
        settings: the scorer, its options (:meth:`OARSettings.resolved_options`) and the gate (``tau``, ``beta``,
            ``floor``: :func:`oarl.core.gating.bilevel_weights`).
        generator, oracle_mask, reward_fn, reference_model, contrast_models, tokenizer: passed to a scorer
            that needs them.
        rows: the layout rows to keep (``[B]`` bool or ``[n]`` long; None: all): a group scorer reads
            context rows that are not scored.
        start: the first column gated (the trainer gates the completion columns, ``start = P``).

    Returns:
        :class:`Credit`, its tensors ``[n, L - start]``. A ``uniform`` scorer (plain GRPO) is not gated: its
        weights are 1 by definition.
        A scorer declared ``output="weights"`` (its method's own weights) is not gated: ``Credit.weights`` are its
        tensor (1 outside the reasoning tokens).
    """
    scorer = get_scorer(settings.method)
    scores = scorer(
        model,
        layout,
        generator=generator,
        oracle_mask=oracle_mask,
        reward_fn=reward_fn,
        reference_model=reference_model,
        contrast_models=contrast_models,
        tokenizer=tokenizer,
        **settings.resolved_options(),
    )
    mask = layout.reasoning_mask
    if rows is not None:
        scores, mask = scores[rows], mask[rows]
    scores, mask = scores[:, start:], mask[:, start:].contiguous()
    if scorer.uniform:
        ones = torch.ones(scores.shape, dtype=torch.float32, device=scores.device)
        return Credit(scores, ones, torch.zeros(len(scores), dtype=torch.bool, device=scores.device))
    # A scorer whose output is its method's own weights skips OAR's gate, here only.
    if not scorer.gated:
        weights, nonfinite = ungated_weights(scores, mask)
        return Credit(scores, weights, nonfinite)
    weights, nonfinite = gate_scores(scores, mask, settings.tau, settings.beta, settings.floor)
    return Credit(scores, weights, nonfinite)
