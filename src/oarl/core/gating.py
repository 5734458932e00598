"""Bi-level gating: token scores -> mass-preserving advantage weights (the paper's suppress/boost gate).

Per row, over the masked (reasoning) positions:

1. ``s = log1p(score)`` (sign-preserving, ``sign(x) * log1p(|x|)``, so the drop-type ``as_joint`` scores,
   which can be negative, stay finite; identical to ``log1p`` for scores >= 0);
2. min-max normalise ``s`` to [0, 1] (a row whose scores are all equal normalises to all zeros);
3. ``thr`` = the ``tau``-quantile of the normalised scores (linear interpolation, as ``torch.quantile``);
4. below ``thr``: ``w = s / thr`` floored at ``floor`` (suppress); at or above: ``w = 1 + beta (s - thr) /
   (1 - thr)`` (boost);
5. rescale so the weights sum to the number of masked positions ``T`` (``sum_t w_t = T``).

Positions outside the mask keep weight 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: The gate's defaults (paper): every settings object and CLI reads them from here.
TAU, BETA, FLOOR = 0.4, 2.0, 0.1


def check_gate_params(tau: float, beta: float, floor: float) -> None:
    """Raise a ValueError unless ``0 < tau < 1``, ``beta >= 0`` (finite) and ``0 <= floor <= 1``."""
    if not (isinstance(tau, (int, float)) and 0.0 < tau < 1.0):
        raise ValueError(f"tau must be in (0, 1) (the quantile splitting suppress/boost), got {tau!r}")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0.0):
        raise ValueError(f"beta must be a finite number >= 0 (the boost strength), got {beta!r}")
    if not (isinstance(floor, (int, float)) and 0.0 <= floor <= 1.0):
        raise ValueError(f"floor must be in [0, 1] (the least weight of a suppressed token), got {floor!r}")


def masked_quantile(values: Tensor, mask: Tensor, q: float) -> Tensor:
    """Per-row ``q``-quantile over masked entries, linear interpolation (``torch.quantile``'s default).

    ``values, mask: [B, L]`` -> ``[B]``; rows without masked entries give 0.
    """
    n = mask.sum(-1)
    ordered = torch.where(mask, values, torch.full_like(values, math.inf)).sort(-1).values
    # The position in float64 whatever the values' dtype (``q * long`` alone would be float32: up to 3e-7 off).
    pos = (n - 1).clamp(min=0).double() * q
    lo = pos.floor().long().unsqueeze(-1)
    hi = pos.ceil().long().unsqueeze(-1)
    v_lo, v_hi = ordered.gather(-1, lo).squeeze(-1), ordered.gather(-1, hi).squeeze(-1)
    frac = (pos - lo.squeeze(-1).double()).to(values.dtype)
    out = v_lo + frac * (v_hi - v_lo)
    return torch.where(n > 0, out, torch.zeros_like(out))


def normalised_scores(scores: Tensor, mask: Tensor) -> Tensor:
    """Steps 1-2 of the gate: ``minmax(sign(x) log1p|x|)`` per row over ``mask``, float64 ``[B, L]``.

    0 outside ``mask``; a row whose masked scores are all equal (or that has none) gives zeros.
    """
    mask = mask.bool()
    x = torch.where(mask, scores.double(), torch.zeros_like(scores, dtype=torch.float64))
    s = torch.sign(x) * torch.log1p(x.abs())
    lo = torch.where(mask, s, torch.full_like(s, math.inf)).amin(-1, keepdim=True)
    hi = torch.where(mask, s, torch.full_like(s, -math.inf)).amax(-1, keepdim=True)
    spread = torch.where(mask.any(-1, keepdim=True), hi - lo, torch.zeros_like(hi))
    return torch.where(mask & (spread > 0), (s - lo) / spread.clamp(min=1e-300), torch.zeros_like(s))


def bilevel_weights(
    scores: Tensor,
    mask: Tensor,
    tau: float = TAU,
    beta: float = BETA,
    floor: float = FLOOR,
    rescale: bool = True,
) -> Tensor:
    """OAR bi-level weights ``w_t`` from token scores.

    Args:
        scores: ``[B, L]`` token importance (any finite values at masked positions).
        mask: ``[B, L]`` positions to reweight (the reasoning tokens).
        tau: quantile threshold in (0, 1); low tau boosts more tokens (risk: entropy collapse).
        beta: boost strength >= 0 (the top token gets ``1 + beta`` before rescaling).
        floor: least weight of a suppressed token before rescaling, in [0, 1].
        rescale: rescale so masked weights sum to their count (turn off only to inspect the raw gate).

    Returns:
        ``[B, L]`` float32 weights, 1.0 outside ``mask``; a row with no masked position is all ones.

    Raises:
        ValueError: on bad ``tau``/``beta``/``floor``, mismatched shapes or non-finite masked scores.
    """
    check_gate_params(tau, beta, floor)
    if scores.shape != mask.shape or scores.dim() != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and mask {tuple(mask.shape)} must both be [B, L]")
    mask = mask.bool()
    x = scores.double()
    bad = mask & ~torch.isfinite(x)
    if bad.any():
        row, col = bad.nonzero()[0].tolist()
        raise ValueError(f"non-finite score {scores[row, col].item()} at row {row}, position {col}")
    s_norm = normalised_scores(x, mask)
    thr = masked_quantile(s_norm, mask, tau).unsqueeze(-1)
    below = s_norm < thr
    w_low = (s_norm / thr.clamp(min=1e-300)).clamp(min=floor)
    head_room = 1.0 - thr
    w_high = 1.0 + beta * torch.where(
        head_room > 0, (s_norm - thr) / head_room.clamp(min=1e-300), torch.zeros_like(s_norm)
    )
    w = torch.where(below, w_low, w_high)
    w = torch.where(mask, w, torch.ones_like(w))
    if rescale:
        n = mask.sum(-1, keepdim=True).to(w.dtype)
        total = torch.where(mask, w, torch.zeros_like(w)).sum(-1, keepdim=True)
        factor = torch.where(n > 0, n / total.clamp(min=1e-300), torch.ones_like(n))
        w = torch.where(mask, w * factor, w)
    return w.float()
