"""KTAE's key-token statistics (arXiv 2505.16826): within a group, a token type that occurs more often in the
correct completions than in the wrong ones is a key token. No model call: a 2x2 contingency table per token
type (rows of the group that contain it or not, correct or wrong) gives an association strength (Fisher's
exact test and the information gain about correctness) and a direction (Cohen's h between the two rates).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.registry import ScorerSpec, register_scorer

CREDITS = ("aligned", "abs")


def _check(opts) -> None:
    if opts.credit not in CREDITS:
        raise ValueError(f"ktae: credit must be one of {CREDITS}, got {opts.credit!r}")
    for name in ("fisher_weight", "ig_weight"):
        v = getattr(opts, name)
        if not (isinstance(v, (int, float)) and v >= 0):
            raise ValueError(f"ktae: {name} must be a number >= 0, got {v!r}")
    if opts.fisher_weight + opts.ig_weight <= 0:
        raise ValueError("ktae: fisher_weight + ig_weight must be > 0")


def _log_comb(n: Tensor, k: Tensor) -> Tensor:
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def fisher_pvalues(table: Tensor) -> Tensor:
    """Two-sided Fisher exact p-values of ``table[N, 4]`` = ``(a, b, c, d)`` counts, float64: the summed
    hypergeometric probability of every table with the same margins that is no likelier than the observed one
    (``scipy.stats.fisher_exact``'s definition, with its 1e-7 relative tolerance). Returns ``[N]``."""
    t = table.double()
    a, b, c, d = t.unbind(-1)
    r1, c1, n = a + b, a + c, t.sum(-1)
    k = torch.arange(int(n.max().item()) + 1 if len(n) else 1, dtype=t.dtype, device=t.device)
    lo, hi = (r1 + c1 - n).clamp(min=0), torch.minimum(r1, c1)
    ok = (k >= lo[:, None]) & (k <= hi[:, None])
    kk = torch.where(ok, k, lo[:, None])  # keep lgamma's arguments valid off the support
    log_p = (
        _log_comb(c1[:, None], kk)
        + _log_comb((n - c1)[:, None], r1[:, None] - kk)
        - _log_comb(n, r1)[:, None]
    )
    p = torch.where(ok, log_p.exp(), torch.zeros_like(log_p))
    p_obs = (_log_comb(c1, a) + _log_comb(n - c1, r1 - a) - _log_comb(n, r1)).exp()
    return torch.where(p <= p_obs[:, None] * (1 + 1e-7), p, torch.zeros_like(p)).sum(-1).clamp(max=1.0)


def _entropy_bits(p: Tensor) -> Tensor:
    return torch.where(p > 0, -p * torch.log2(p.clamp(min=1e-300)), torch.zeros_like(p))


def information_gain(table: Tensor) -> Tensor:
    """``I(correct; contains token)`` in bits per ``(a, b, c, d)`` row of ``table[N, 4]``. Returns ``[N]``."""
    t = table.double()
    a, b, c, d = t.unbind(-1)
    n = t.sum(-1).clamp(min=1)
    h = _entropy_bits((a + c) / n) + _entropy_bits((b + d) / n)

    def h_cond(x: Tensor, y: Tensor) -> Tensor:
        s = (x + y).clamp(min=1e-300)
        return torch.where(x + y > 0, _entropy_bits(x / s) + _entropy_bits(y / s), torch.zeros_like(x))

    return h - ((a + b) / n) * h_cond(a, b) - ((c + d) / n) * h_cond(c, d)


def key_token_values(
    present: Tensor, correct: Tensor, fisher_weight: float = 1.0, ig_weight: float = 1.0
) -> Tensor:
    """KTAE's value of every token type of one group (its Eq. for the key-token score, without the term-frequency
    refinement): ``2 * (sigmoid(s * h) - 1/2)`` with ``s = (w_F exp(-2 p_Fisher) + w_IG IG) / (w_F + w_IG)``
    (the Fisher term is 0 where ``p = 1``) and ``h = asin(sqrt(P(v | correct))) - asin(sqrt(P(v | wrong)))``
    (half of Cohen's h, as the source): positive for tokens of the correct rows; values in (-1, 1).

    Args:
        present: ``[G, V]`` bool, row g contains token type v.
        correct: ``[G]`` bool; the group must have both kinds.

    Returns ``[V]`` float64 (0 for types no row contains).
    """
    pres = present.double()
    a, b = pres[correct].sum(0), pres[~correct].sum(0)
    n_c, n_w = float(correct.sum()), float((~correct).sum())
    table = torch.stack([a, b, n_c - a, n_w - b], -1)
    p = fisher_pvalues(table)
    fisher = torch.where(
        p < 1.0 - 1e-9, torch.exp(-2 * p), torch.zeros_like(p)
    )  # p = 1 up to rounding: no evidence
    strength = (fisher_weight * fisher + ig_weight * information_gain(table)) / (fisher_weight + ig_weight)
    h = torch.asin((a / n_c).clamp(0, 1).sqrt()) - torch.asin((b / n_w).clamp(0, 1).sqrt())
    value = 2 * (torch.sigmoid(strength * h) - 0.5)
    return torch.where(a + b > 0, value, torch.zeros_like(value))


@register_scorer(
    ScorerSpec(
        "ktae",
        "group",
        frozenset({"group_rewards"}),
        "experimental",
        "none",
        check=_check,
        why="no gain over GRPO on the flag task (-0.009 / -0.004 AUC, 5 seeds): token-type statistics cannot tell one occurrence of a character from another (docs/credit_study.md)",
        label="KTAE",
    )  # fmt: skip
)
def ktae_scores(
    model: nn.Module | None,
    layout: Layout,
    credit: str = "aligned",
    fisher_weight: float = 1.0,
    ig_weight: float = 1.0,
) -> Tensor:
    """KTAE (arXiv 2505.16826): each reasoning token scores its type's key-token value in its group
    (:func:`key_token_values` over the types in each row's completion, ``layout.generated``, for every row of
    the group with a finite reward, scored or not; ``correct`` = reward above the group's mean, which for 0/1
    rewards is the source's ``r > 0``). KTAE adds the value to the rollout's advantage;
    through OAR's gate ``credit="aligned"`` (default) scores ``value * sign(r - mean)``, so a correct row's
    key tokens and a wrong row's error tokens are boosted, as ``tree`` does; ``"abs"``: ``|value|``. Groups
    whose rows are all correct or all wrong, and rows with a non-finite reward, score 0. No model call.
    Returns ``[B, L]`` float32, 0 outside ``reasoning_mask``.
    """
    ids, reasoning, generated = layout.input_ids, layout.reasoning_mask.bool(), layout.generated
    if layout.group_ids is None or layout.rewards is None:
        raise ValueError("the 'ktae' scorer needs layout.group_ids and layout.rewards (needs group_rewards)")
    scores = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    rewards = layout.rewards.double()
    vocab = int(ids.max()) + 1 if ids.numel() else 1
    for g in layout.group_ids.unique():
        rows = ((layout.group_ids == g) & torch.isfinite(rewards)).nonzero().flatten()
        if len(rows) < 2:
            continue
        r = rewards[rows]
        mean = r.mean()
        correct = r > mean
        if not correct.any() or correct.all():
            continue
        present = torch.zeros(len(rows), vocab + 1, dtype=torch.bool, device=ids.device)
        # A row's token types are those of its whole completion (the source counts the response), not of
        # its reasoning mask: a row the trainer does not score (no answer, too long) has an empty one but
        # still holds its tokens and its reward, and must not count as a row containing nothing.
        present.scatter_(
            1, torch.where(generated[rows], ids[rows], vocab), True
        )  # column vocab: not generated
        present = present[:, :vocab]
        value = key_token_values(present, correct, fisher_weight, ig_weight)[ids[rows]]
        if credit == "aligned":
            value = value * torch.sign(r - mean)[:, None]
        else:
            value = value.abs()
        scores[rows] = torch.where(reasoning[rows], value, torch.zeros_like(value)).float()
    return scores
