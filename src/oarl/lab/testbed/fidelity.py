"""How faithfully a cheap scorer reproduces exact OAR-P: rank agreement per row, and what it costs.

Per row, over the candidate (reasoning) tokens: Spearman's rho and Kendall's tau-b between a scorer's scores
and the reference (exact OAR-P on the same probe), and the overlap of the two top-``frac`` token sets
(:func:`top_overlap`: ``|top_k(s) & top_k(ref)| / k`` with ``k = ceil(frac * n)``, ties averaged). Rows where either side is constant have no
defined rank correlation (NaN, skipped in the means). :class:`PassCounter` counts the decoder's forward
token-passes (with and without autograd) so costs compare across scorers and machines, next to seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from oarl.core.model import decoder_and_head
from oarl.lab.testbed.stats import t_interval


def top_inclusion(values: np.ndarray, k: int) -> np.ndarray:
    """Each entry's probability of being in the top ``k`` of ``values`` when ties are broken uniformly at
    random: 1 above the ``k``-th largest value, 0 below, ``(k - #above) / #tied`` for the ties at it."""
    kth = np.sort(values)[::-1][k - 1]
    above, tied = values > kth, values == kth
    return np.where(above, 1.0, np.where(tied, (k - above.sum()) / tied.sum(), 0.0))


def top_overlap(scores: np.ndarray, reference: np.ndarray, frac: float = 0.1) -> float:
    """The one top-``frac`` overlap of the project: ``E|top_k(scores) & top_k(reference)| / k``,
    ``k = ceil(frac * n)``, ties broken uniformly at random on each side and averaged exactly (no rng), so a
    constant scorer scores ``k / n`` (chance), not whatever the token order gives. Denominator ``k`` (each top
    set has exactly ``k`` members). NaN for an empty row. Without ties: the plain ``|A & B| / k``."""
    n = len(scores)
    if n == 0:
        return math.nan
    k = max(1, math.ceil(frac * n))
    s, r = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float((top_inclusion(s, k) * top_inclusion(r, k)).sum() / k)


def row_fidelity(
    scores: Tensor, reference: Tensor, candidates: Tensor, frac: float = 0.1
) -> dict[str, list[float]]:
    """Per-row ``spearman``, ``kendall`` and ``top_overlap`` of ``scores`` against ``reference``.

    Args:
        scores, reference: ``[B, L]`` token scores.
        candidates: ``[B, L]`` bool, the tokens compared (reasoning tokens).
        frac: share of tokens in the top set for ``top_overlap``.

    Returns:
        ``{metric: [B values]}``; NaN where a row has fewer than 2 candidates or a constant side.
    """
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    out: dict[str, list[float]] = {"spearman": [], "kendall": [], "top_overlap": []}
    s_all = scores.detach().double().cpu().numpy()
    r_all = reference.detach().double().cpu().numpy()
    c_all = candidates.bool().cpu().numpy()
    for s_row, r_row, c_row in zip(s_all, r_all, c_all, strict=True):
        s, r = s_row[c_row], r_row[c_row]
        constant = len(s) < 2 or np.ptp(s) == 0 or np.ptp(r) == 0  # ptp == 0: all equal, by definition
        out["spearman"].append(math.nan if constant else float(stats.spearmanr(s, r).statistic))
        out["kendall"].append(math.nan if constant else float(stats.kendalltau(s, r).statistic))
        out["top_overlap"].append(top_overlap(s, r, frac) if len(s) else math.nan)
    return out


@dataclass
class PassCounter:
    """Counts decoder passes as token-passes (rows x new positions): forwards with and without autograd
    recording, and backwards through the decoder (one per backward call, so a graph kept with
    ``retain_graph`` and differentiated M times counts M).

    A backward costs about twice a forward, so ``cost_units = no_grad + grad + 2 * backward`` is a
    machine-independent cost in forward token-passes. Use around a scorer call: ``with PassCounter(model) as c``.
    """

    model: nn.Module
    no_grad: int = 0
    grad: int = 0
    backward: int = 0
    calls: int = 0
    seconds: float = 0.0
    _handle: object = field(default=None, repr=False)
    _post: object = field(default=None, repr=False)
    _t0: float = field(default=0.0, repr=False)

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = kwargs.get("input_ids")
        if x is None:
            x = kwargs.get("inputs_embeds")
        if x is None and args:
            x = args[0]
        tokens = int(x.shape[0] * x.shape[1]) if x is not None else 0
        self.calls += 1
        if torch.is_grad_enabled():
            self.grad += tokens
        else:
            self.no_grad += tokens

    def _post_hook(self, module: nn.Module, args: tuple, output: object) -> None:
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is not None and hidden.requires_grad:
            tokens = int(hidden.shape[0] * hidden.shape[1])

            def count(grad: Tensor) -> None:
                self.backward += tokens

            hidden.register_hook(count)

    def __enter__(self) -> PassCounter:
        decoder, _ = decoder_and_head(self.model)
        self._handle = decoder.register_forward_pre_hook(self._hook, with_kwargs=True)
        self._post = decoder.register_forward_hook(self._post_hook)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t0
        self._handle.remove()
        self._post.remove()

    @property
    def cost_units(self) -> float:
        """Forward token-passes plus 2x the backward token-passes."""
        return float(self.no_grad + self.grad + 2 * self.backward)


def summarize(values: list[float]) -> dict[str, float]:
    """Mean, t 95% half-width (0 for a single value) and count over the finite values
    (:func:`oarl.lab.testbed.stats.t_interval`)."""
    iv = t_interval(values)
    return {"mean": iv.mean, "ci95": 0.0 if iv.n == 1 else iv.half_width, "n": iv.n}


def scorer_fidelity(
    score_fn: Callable[[dict[str, Tensor]], Tensor],
    reference: Tensor | None,
    batch: Mapping[str, Tensor],
    model: nn.Module,
    frac: float = 0.1,
) -> dict[str, object]:
    """Fidelity of ``score_fn(batch) -> [B, L]`` to ``reference`` on ``batch``, and its cost.

    ``reference=None``: ``score_fn`` computes the reference itself (its scores are compared with themselves,
    and ``out["scores"]`` is the reference for the other scorers).

    Returns ``{"spearman"|"kendall"|"top_overlap": summary, "rows": per-row dict, "cost": {...}}``; the cost
    holds seconds, forward token-passes with/without grad, and ``cost_units``.
    """
    with PassCounter(model) as counter:
        scores = score_fn(dict(batch))
    rows = row_fidelity(scores, scores if reference is None else reference, batch["reasoning_mask"], frac)
    out: dict[str, object] = {name: summarize(v) for name, v in rows.items()}
    out["rows"] = rows
    out["scores"] = scores
    out["cost"] = {
        "seconds": counter.seconds,
        "no_grad_tokens": counter.no_grad,
        "grad_tokens": counter.grad,
        "backward_tokens": counter.backward,
        "cost_units": counter.cost_units,
    }
    return out
