"""Diagnostics of reshaped advantages (effective sample size, concentration) and of scorers against oracle
causal tokens (recall@k, precision@k, AUROC)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def ess_ratio(weights: Tensor, mask: Tensor) -> Tensor:
    """ESS-ratio per row: ``(sum_t w_t)^2 / (n * sum_t w_t^2)`` over masked positions. ``[B, L] -> [B]``.

    1.0 for uniform weights, -> 1/n as one token takes all the mass. Rows without masked positions give 1.0.
    """
    mask = mask.bool()
    w = torch.where(mask, weights.double(), torch.zeros_like(weights, dtype=torch.float64))
    n = mask.sum(-1).double()
    sq = (w * w).sum(-1)
    out = w.sum(-1) ** 2 / (n * sq).clamp(min=1e-300)
    return torch.where((n > 0) & (sq > 0), out, torch.ones_like(out)).float()


def top_mass_share(advantages: Tensor, mask: Tensor, frac: float = 0.1) -> Tensor:
    """Share of ``sum_t |A_t|`` held by the top ``ceil(frac * n)`` tokens of each row. ``[B, L] -> [B]``.

    Uniform advantages give ``ceil(frac n) / n``. Rows with no mass (all-zero advantages or empty mask) give
    NaN: average with ``nanmean``.
    """
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    mask = mask.bool()
    a = torch.where(mask, advantages.double().abs(), torch.zeros_like(advantages, dtype=torch.float64))
    n = mask.sum(-1)
    k = torch.clamp((n.double() * frac).ceil().long(), min=1)
    ordered = a.sort(-1, descending=True).values
    keep = torch.arange(a.shape[-1], device=a.device).expand_as(a) < k.unsqueeze(-1)
    total = a.sum(-1)
    share = (ordered * keep).sum(-1) / total.clamp(min=1e-300)
    return torch.where(total > 0, share, torch.full_like(share, math.nan)).float()


def oracle_recall(scores: Tensor, oracle_mask: Tensor, candidate_mask: Tensor | None = None) -> Tensor:
    """Recall@k of the oracle causal tokens, ``k`` = number of oracle tokens in the row. ``[B, L] -> [B]``.

    Tokens are ranked by score among ``candidate_mask`` (default: all positions). Ties at the k-th score are
    broken at random *in expectation* (exact expected recall), so a constant scorer gets chance level rather
    than a score that depends on token order. Rows without oracle tokens give NaN.
    """
    oracle = oracle_mask.bool()
    cand = torch.ones_like(oracle) if candidate_mask is None else candidate_mask.bool()
    x = torch.where(cand, scores.double(), torch.full_like(scores, -math.inf, dtype=torch.float64))
    k = oracle.sum(-1)
    out = torch.full(k.shape, math.nan, dtype=torch.float64, device=scores.device)
    for b in range(x.shape[0]):
        kb = int(k[b])
        if kb == 0:
            continue
        row = x[b]
        kth = row.sort(descending=True).values[min(kb, row.numel()) - 1]
        above = row > kth
        tied = (row == kth) & cand[b]
        slots = kb - int(above.sum())
        hits = float((above & oracle[b]).sum())
        n_tied = int(tied.sum())
        if n_tied > 0 and slots > 0:
            hits += slots * float((tied & oracle[b]).sum()) / n_tied
        out[b] = hits / kb
    return out.float()


def _topk_expected_hits(scores: Tensor, positive: Tensor, cand: Tensor, k: Tensor) -> Tensor:
    """Expected number of positives among the top ``k[b]`` candidates of each row, ties broken at random."""
    x = torch.where(cand, scores.double(), torch.full_like(scores, -math.inf, dtype=torch.float64))
    hits = torch.zeros(x.shape[0], dtype=torch.float64, device=scores.device)
    for b in range(x.shape[0]):
        kb = min(int(k[b]), int(cand[b].sum()))
        if kb <= 0:
            continue
        row, pos = x[b], positive[b] & cand[b]
        kth = row.sort(descending=True).values[kb - 1]
        above = (row > kth) & cand[b]
        tied = (row == kth) & cand[b]
        slots = kb - int(above.sum())
        hits[b] = float((above & pos).sum()) + slots * float((tied & pos).sum()) / int(tied.sum())
    return hits


def precision_at_k(
    scores: Tensor, oracle_mask: Tensor, k: int | Tensor, candidate_mask: Tensor | None = None
) -> Tensor:
    """Precision@k: expected share of oracle tokens among the ``k`` top-scored candidates. ``[B, L] -> [B]``.

    ``k`` is an int or a per-row ``[B]`` tensor, capped at the number of candidates. Ties at the k-th score
    are broken at random in expectation, so a constant scorer gets the oracle share of the candidates. Rows
    with ``k <= 0`` or no candidates give NaN. With ``k`` = the number of oracle tokens this equals
    :func:`oracle_recall`.
    """
    oracle = oracle_mask.bool()
    cand = torch.ones_like(oracle) if candidate_mask is None else candidate_mask.bool()
    k_t = torch.as_tensor(k, device=scores.device).long().expand(scores.shape[0])
    k_eff = torch.minimum(k_t, cand.sum(-1))
    hits = _topk_expected_hits(scores, oracle, cand, k_eff)
    out = hits / k_eff.clamp(min=1).double()
    return torch.where(k_eff > 0, out, torch.full_like(out, math.nan)).float()


def auroc(scores: Tensor, positive_mask: Tensor, candidate_mask: Tensor | None = None) -> Tensor:
    """Per-row AUROC of ``scores`` separating positive from negative candidates. ``[B, L] -> [B]``.

    Rank-based (Mann-Whitney): ``P(s_pos > s_neg) + 0.5 P(s_pos = s_neg)`` over all positive/negative pairs
    among ``candidate_mask`` (default: all positions), so ties count one half and a constant scorer gets
    exactly 0.5. Rows without a positive or without a negative candidate give NaN.
    """
    pos = positive_mask.bool()
    cand = torch.ones_like(pos) if candidate_mask is None else candidate_mask.bool()
    x = scores.double()
    out = torch.full((x.shape[0],), math.nan, dtype=torch.float64, device=scores.device)
    for b in range(x.shape[0]):
        p, n = x[b][pos[b] & cand[b]], x[b][~pos[b] & cand[b]]
        if p.numel() == 0 or n.numel() == 0:
            continue
        diff = p.unsqueeze(1) - n.unsqueeze(0)
        out[b] = ((diff > 0).double() + 0.5 * (diff == 0).double()).mean()
    return out.float()
