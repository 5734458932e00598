"""Approximate OAR-P for long reasoning: fewer or cheaper masked copies than one per token.

Exact OAR-P (:func:`~oarl.core.scorers.masking.exact.perturbation_scores`) runs one masked copy per reasoning
token, and a copy masked at ``t`` recomputes positions ``t .. p_max``: about ``T^2 / 2`` token-passes per row.
The scorers here trade fidelity to it for cost:

* ``perturbation_span`` (span masking): one copy masks a whole span (``window`` consecutive reasoning tokens,
  or one reasoning step ending at a ``step_end_ids`` token); every token of the span gets the span's
  ``KL(p_clean || p_masked_span)``, spread uniformly or in proportion to a pre-rank scorer. ``~T^2 / (2w)``.
* ``perturbation_prerank``: a gradient-class scorer (``prerank``, default OAR-G) ranks the tokens; exact
  OAR-P runs only on the top ``fraction`` of them; the rest keep their pre-rank score, scaled by the median
  exact / pre-rank ratio of the refined tokens.
* ``perturbation_refine`` (window, then refine): span scores first; exact OAR-P on the tokens of the
  highest-scoring spans until ``fraction`` of the tokens are covered; the rest keep their (spread, scaled)
  span score.

All share :func:`.kernel.group_divergences`, which masks arbitrary position groups with the same KV-cache reuse as
exact OAR-P (a group is recomputed from its first position), so singleton groups give exact OAR-P.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.masking.exact import perturbation_scores
from oarl.core.scorers.masking.kernel import MAX_BATCH_TOKENS, group_divergences, reasoning_spans
from oarl.core.scorers.registry import ScorerSpec, get_scorer, register_scorer, shared_options

SPREADS = ("uniform", "linear", "prerank")


def _prerank_options(prerank: str, probe: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pre-rank scorer's options: the probe (if it reads one) and ``prerank_options``; validated."""
    spec = get_scorer(prerank)
    if spec.cost == "quadratic":  # a pre-rank must be cheaper than what it saves
        raise ValueError(f"prerank must be a cheap scorer, got {prerank!r}")
    opts = {**shared_options(prerank, probe=probe), **(options or {})}
    spec.validate(opts)
    return opts


def _check(opts) -> None:
    """Config-time checks of the approximate scorers' options (values, and the pre-rank's own options)."""
    if getattr(opts, "spread", "uniform") not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {opts.spread!r}")
    if getattr(opts, "window", 1) < 1:
        raise ValueError(f"window must be >= 1, got {opts.window}")
    if not 0.0 <= getattr(opts, "fraction", 0.0) <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {opts.fraction}")
    _prerank_options(opts.prerank, opts.probe, opts.prerank_options)


def _spec(name: str) -> ScorerSpec:
    """The three approximations share their declaration (gradients and randomness: the default pre-rank's)."""
    needs = frozenset({"model", "gradients", "randomness"})
    return ScorerSpec(name, "masking", needs, "recommended", "quadratic", check=_check)


def _prerank(model, layout: Layout, prerank, probe, options, generator) -> Tensor:
    opts = _prerank_options(prerank, probe, options)
    return get_scorer(prerank)(model, layout, generator=generator, **opts).float().abs()


def _spread(
    span_scores: list[Tensor], spans: list[list[list[int]]], shape, pre: Tensor | None, linear: bool = False
) -> Tensor:
    """Token scores ``[B, L]``: each span's score on its tokens, uniformly, in proportion to ``pre``, or
    (``linear``) interpolated between span centres along the reasoning tokens (flat beyond the end ones)."""
    scores = torch.zeros(shape, dtype=torch.float32)
    for b, (row_spans, row_scores) in enumerate(zip(spans, span_scores, strict=True)):
        if linear and row_spans:
            sizes = torch.tensor([len(s) for s in row_spans], dtype=torch.float64)
            centres = sizes.cumsum(0) - (sizes + 1) / 2  # in reasoning-token order
            order = torch.arange(int(sizes.sum()), dtype=torch.float64)
            vals = torch.from_numpy(np.interp(order.numpy(), centres.numpy(), row_scores.double().numpy()))
            scores[b, torch.tensor([t for s in row_spans for t in s])] = vals.float()
            continue
        for span, s in zip(row_spans, row_scores.tolist(), strict=True):
            idx = torch.tensor(span)
            if pre is None:
                scores[b, idx] = s
            else:
                share = pre[b, idx].cpu()
                mean = share.mean()
                scores[b, idx] = s * (share / mean if mean > 0 else torch.ones_like(share))
    return scores


def _merge(rough: Tensor, exact: Tensor, refined: Tensor) -> Tensor:
    """Exact scores on ``refined`` tokens; elsewhere ``rough`` scaled by the median exact / rough ratio there.

    All ``[B, L]``; the ratio is per row (1 where it is undefined).
    """
    out = rough.clone()
    for b in range(rough.shape[0]):
        sel = refined[b]
        ok = sel & (rough[b] > 0)
        scale = (exact[b, ok] / rough[b, ok]).median() if ok.any() else torch.tensor(1.0)
        out[b] = rough[b] * scale
        out[b, sel] = exact[b, sel]
    return out


def _top_tokens(order_scores: Tensor, reasoning_mask: Tensor, fraction: float) -> Tensor:
    """``[B, L]`` bool: the top ``ceil(fraction * n)`` reasoning tokens of each row by ``order_scores``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    sel = torch.zeros_like(reasoning_mask, dtype=torch.bool)
    for b in range(reasoning_mask.shape[0]):
        ts = reasoning_mask[b].bool().nonzero().flatten()
        k = math.ceil(fraction * len(ts))
        if k:
            top = order_scores[b, ts].argsort(descending=True, stable=True)[:k]
            sel[b, ts[top]] = True
    return sel


@register_scorer(_spec("perturbation_span"))
def span_perturbation_scores(
    model: nn.Module,
    layout: Layout,
    window: int = 16,
    step_end_ids: Sequence[int] | None = None,
    spread: str = "uniform",
    prerank: str = "gradient",
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    prerank_options: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Span-masked OAR-P: ``score_t = KL(p_clean || p_masked_S)`` for the span ``S`` holding ``t``.

    Args:
        window: tokens per span (``window=1`` is exact OAR-P).
        step_end_ids: if given, spans are reasoning steps ending at these token ids (cut to ``window``).
        spread: ``"uniform"`` (every token of a span gets its score), ``"linear"`` (interpolated between span
            centres) or ``"prerank"`` (score times the token's pre-rank score over the span's mean pre-rank
            score; one extra ``prerank`` scorer call).
        prerank: registered cheap scorer used by ``spread="prerank"``.
        prerank_options: its options (e.g. ``{"noise_std": 0.1}``); it gets ``probe`` and ``generator`` too.
        Others: as in ``perturbation_scores``.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask``. Cost ``~T^2 / (2 window)`` token-passes a row.
    """
    input_ids, attention_mask, reasoning_mask, answer_mask = layout.tensors
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    spans = reasoning_spans(input_ids, reasoning_mask, window, step_end_ids)
    span_scores = group_divergences(
        model, input_ids, attention_mask, answer_mask, spans, probe, mask_token_id, max_batch_tokens
    )
    pre = None
    if spread == "prerank":
        pre = _prerank(model, layout, prerank, probe, prerank_options, generator)
    return _spread(span_scores, spans, input_ids.shape, pre, linear=spread == "linear").to(input_ids.device)


@register_scorer(_spec("perturbation_prerank"))
def prerank_perturbation_scores(
    model: nn.Module,
    layout: Layout,
    fraction: float = 0.05,
    prerank: str = "gradient",
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    prerank_options: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Exact OAR-P on the top ``fraction`` of tokens by a cheap pre-rank scorer; scaled pre-rank elsewhere.

    Args:
        fraction: share of each row's reasoning tokens scored exactly (``1.0`` is exact OAR-P).
        prerank: registered cheap scorer (default ``"gradient"``, OAR-G).
        prerank_options: its options (e.g. ``{"noise_std": 0.1}``); it gets ``probe`` and ``generator`` too.
        Others: as in ``perturbation_scores``.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask``.
    """
    input_ids, reasoning_mask = layout.input_ids, layout.reasoning_mask
    pre = _prerank(model, layout, prerank, probe, prerank_options, generator)
    pre = pre.cpu() * reasoning_mask.bool().cpu()
    sel = _top_tokens(pre, reasoning_mask.cpu(), fraction)
    exact = perturbation_scores(
        model, layout.replace(reasoning_mask=sel.to(input_ids.device)), probe=probe, mask_token_id=mask_token_id,
        max_batch_tokens=max_batch_tokens,
    ).cpu()  # fmt: skip
    return _merge(pre, exact, sel).to(input_ids.device)


@register_scorer(_spec("perturbation_refine"))
def refine_perturbation_scores(
    model: nn.Module,
    layout: Layout,
    window: int = 16,
    fraction: float = 0.05,
    step_end_ids: Sequence[int] | None = None,
    spread: str = "uniform",
    prerank: str = "gradient",
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    prerank_options: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Window, then refine: span-masked OAR-P, then exact OAR-P on the tokens of the top-scoring spans.

    Spans are taken in order of their score until ``ceil(fraction * n)`` tokens are covered (whole spans);
    those tokens get exact scores, the others their span score (spread as ``spread``) scaled by the median
    exact / span ratio on the refined tokens. ``fraction=1.0`` is exact OAR-P.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask``.
    """
    input_ids, reasoning_mask = layout.input_ids, layout.reasoning_mask
    rough = span_perturbation_scores(
        model, layout, window=window,
        step_end_ids=step_end_ids, spread=spread, prerank=prerank, probe=probe, mask_token_id=mask_token_id,
        max_batch_tokens=max_batch_tokens, prerank_options=prerank_options, generator=generator,
    ).cpu()  # fmt: skip
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    # Rank spans by their (uniform) span score: order tokens by span score, ties within a span by position.
    spans = reasoning_spans(input_ids, reasoning_mask, window, step_end_ids)
    sel = torch.zeros(reasoning_mask.shape, dtype=torch.bool)
    for b, row_spans in enumerate(spans):
        n = sum(len(s) for s in row_spans)
        need = math.ceil(fraction * n)
        keyed = sorted(row_spans, key=lambda s: -float(rough[b, s].mean()))
        for s in keyed:
            if need <= 0:
                break
            sel[b, torch.tensor(s)] = True
            need -= len(s)
    exact = perturbation_scores(
        model, layout.replace(reasoning_mask=sel.to(input_ids.device)), probe=probe, mask_token_id=mask_token_id,
        max_batch_tokens=max_batch_tokens,
    ).cpu()  # fmt: skip
    return _merge(rough, exact, sel).to(input_ids.device)
