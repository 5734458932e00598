"""Horizon-truncated OAR-P: a masked copy propagates exactly for ``horizon`` positions, then only to the probe.

Exact OAR-P recomputes every position from the masked token ``t`` to the last probe position ``p_max``
(``~T^2 / 2`` token-passes a row). Here the copies masking ``t0 .. t0 + m - 1`` recompute positions
``t0 .. t0 + m - 1 + horizon`` (at least ``horizon`` after each masked token), keep the *clean* keys and values
of the positions between that and the first probe position ``p0``, and recompute the probe positions
``p0 .. p_max`` against that mixed cache. Effects that reach the probe through a position more than
``horizon`` tokens after ``t`` are dropped; direct attention from the probe to the recomputed positions (at
every layer) is kept. Cost ``~T (m + horizon + K)`` token-passes plus the probe's attention over the prefix.
A chunk whose recomputed range reaches ``p0`` is computed exactly, so ``horizon >= T`` is exact OAR-P.

With ``window > 0`` the long-range part is put back from spans: every span of ``window`` reasoning tokens is
masked once exactly (``S_W``, ``~T^2 / (2 window)``) and once horizon-truncated (``H_W``, cheap), and a token's
horizon score is multiplied by ``S_W / H_W`` (its log interpolated between span centres). Short-range,
token-specific effects come from the token's own copy, the smooth long-range amplification from the spans.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import (
    decoder_hidden,
    default_mask_token_id,
    eval_mode,
    gather_positions,
    head_logits,
    mixed_cache,
    position_ids_from_mask,
    prefix_cache,
    reusable_cache,
)
from oarl.core.probes import check_probe, probe_divergence, probe_from_logits, probe_index, probe_targets
from oarl.core.scorers.masking.kernel import MAX_BATCH_TOKENS, group_divergences, reasoning_spans
from oarl.core.scorers.registry import ScorerSpec, register_scorer


def _span_ratio(model, input_ids, attention_mask, reasoning_mask, answer_mask, window, kw) -> Tensor:
    """``[B, L]`` factor ``S_W / H_W`` per reasoning token, log-linear between span centres (1 elsewhere)."""
    spans = reasoning_spans(input_ids, reasoning_mask, window)
    exact = group_divergences(model, input_ids, attention_mask, answer_mask, spans, kw["probe"],
                              kw["mask_token_id"], kw["max_batch_tokens"])  # fmt: skip
    trunc = _horizon_groups(model, input_ids, attention_mask, answer_mask, spans, **kw)
    out = torch.ones(input_ids.shape, dtype=torch.float64)
    tiny = torch.finfo(torch.float32).tiny
    for b, row in enumerate(spans):
        if not row:
            continue
        log_r = (exact[b].double().clamp_min(tiny) / trunc[b].double().clamp_min(tiny)).log()
        sizes = torch.tensor([len(s) for s in row], dtype=torch.float64)
        centres = sizes.cumsum(0) - (sizes + 1) / 2
        order = torch.arange(int(sizes.sum()), dtype=torch.float64)
        vals = torch.from_numpy(np.interp(order.numpy(), centres.numpy(), log_r.numpy())).exp()
        out[b, torch.tensor([t for s in row for t in s])] = vals
    return out.float()


@torch.no_grad()
def _horizon_groups(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    answer_mask: Tensor,
    groups: list[list[list[int]]],
    horizon: int,
    copies_per_chunk: int,
    probe: str,
    mask_token_id: int | None,
    max_batch_tokens: int,
) -> list[Tensor]:
    """Horizon-truncated ``KL(p_clean || p_masked_G)`` per position group (groups sorted, in order); groups
    whose recomputed range reaches the first probe position are computed exactly. Per row ``[len(groups[b])]``."""
    mask_id = default_mask_token_id(model, mask_token_id)
    out = [torch.zeros(len(g), dtype=torch.float32) for g in groups]
    positions, valid = probe_index(answer_mask, probe)
    targets = probe_targets(input_ids, positions)
    pos_ids = position_ids_from_mask(attention_mask)
    config = getattr(model, "config", None)
    exact_groups: list[list[list[int]]] = [[] for _ in groups]
    exact_index: list[list[int]] = [[] for _ in groups]
    with eval_mode(model):
        hidden, cache = decoder_hidden(model, attention_mask, pos_ids, input_ids=input_ids, use_cache=True)
        clean_h = gather_positions(hidden, positions)
        clean = probe_from_logits(head_logits(model, clean_h), valid, targets, probe)
        reusable = reusable_cache(cache)
        for b in range(len(groups)):
            if not valid[b].any():
                continue
            p0 = int(positions[b][valid[b]].min())
            p_max = int(positions[b][valid[b]].max())
            probe_pos = positions[b][valid[b]] - p0  # offsets in the recomputed probe range
            todo = [(i, sorted(g)) for i, g in enumerate(groups[b]) if g and min(g) <= p_max]
            for j in range(0, len(todo), copies_per_chunk):
                chunk = todo[j : j + copies_per_chunk]
                t0, stop = chunk[0][1][0], max(g[-1] for _, g in chunk) + horizon + 1  # recompute [t0, stop)
                if stop >= p0 or not reusable:  # the horizon reaches the probe: exact for this chunk
                    exact_groups[b] += [g for _, g in chunk]
                    exact_index[b] += [i for i, _ in chunk]
                    continue
                copies = len(chunk)
                ids = input_ids[b, t0:stop].repeat(copies, 1)
                for c, (_, g) in enumerate(chunk):
                    ids[c, torch.tensor(g) - t0] = mask_id
                _, new = decoder_hidden(
                    model, attention_mask[b : b + 1, :stop].expand(copies, -1),
                    pos_ids[b : b + 1, t0:stop].expand(copies, -1), input_ids=ids,
                    past_key_values=prefix_cache(cache, b, t0, copies, config), use_cache=True,
                )  # fmt: skip
                h_new, _ = decoder_hidden(
                    model, attention_mask[b : b + 1, : p_max + 1].expand(copies, -1),
                    pos_ids[b : b + 1, p0 : p_max + 1].expand(copies, -1),
                    input_ids=input_ids[b : b + 1, p0 : p_max + 1].expand(copies, -1),
                    past_key_values=mixed_cache(new, cache, b, stop, p0, config), use_cache=True,
                )  # fmt: skip
                h = clean_h[b : b + 1].expand(copies, -1, -1).clone()
                h[:, valid[b]] = h_new[:, probe_pos]
                masked = probe_from_logits(
                    head_logits(model, h), valid[b : b + 1].expand(copies, -1),
                    targets[b : b + 1].expand(copies, -1), probe,
                )  # fmt: skip
                div = probe_divergence(clean[b : b + 1].expand_as(masked), masked, probe)
                out[b][torch.tensor([i for i, _ in chunk])] = div.float().cpu()
    if any(exact_groups):
        exact = group_divergences(model, input_ids, attention_mask, answer_mask, exact_groups, probe, mask_id,
                                  max_batch_tokens)  # fmt: skip
        for b, idx in enumerate(exact_index):
            if idx:
                out[b][torch.tensor(idx)] = exact[b]
    return out


@register_scorer(
    ScorerSpec(
        "perturbation_horizon", "masking", frozenset({"model"}), "experimental", "linear",
        why="8.6x a GRPO step (perturbation_linear: 2.16x); on the trained flag model even horizon 64 keeps only "
        "Spearman 0.79 vs exact OAR-P (docs/performance.md, \"Past T²\")",
    )
)  # fmt: skip
def horizon_perturbation_scores(
    model: nn.Module,
    layout: Layout,
    horizon: int = 32,
    copies_per_chunk: int = 16,
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    window: int = 0,
) -> Tensor:
    """OAR-P with the masked copy's effect propagated exactly for ``horizon`` positions (then probe only).

    Args:
        horizon: positions recomputed after each masked token before the clean cache takes over (>= 0).
        copies_per_chunk: consecutive reasoning tokens masked in one batched pass (``m``); each chunk
            recomputes ``m + horizon`` positions per copy.
        probe, mask_token_id, max_batch_tokens: as in ``perturbation_scores`` (chunks computed exactly use
            ``max_batch_tokens``).
        window: if > 0, the span correction of the module docstring with spans of ``window`` tokens.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask``.
    """
    check_probe(probe)
    input_ids, attention_mask, reasoning_mask, answer_mask = layout.tensors
    if horizon < 0 or copies_per_chunk < 1 or window < 0:
        raise ValueError(f"need horizon, window >= 0 and copies_per_chunk >= 1, got {horizon}, {window}, "
                         f"{copies_per_chunk}")  # fmt: skip
    kw = dict(probe=probe, mask_token_id=mask_token_id, max_batch_tokens=max_batch_tokens)
    groups = [
        [[t] for t in reasoning_mask[b].bool().nonzero().flatten().tolist()] for b in range(len(input_ids))
    ]
    per_row = _horizon_groups(
        model, input_ids, attention_mask, answer_mask, groups, horizon, copies_per_chunk, **kw
    )
    scores = torch.zeros(input_ids.shape, dtype=torch.float32)
    for b, (row, vals) in enumerate(zip(groups, per_row, strict=True)):
        if row:
            scores[b, torch.tensor([g[0] for g in row])] = vals
    if window > 0:
        span_kw = dict(kw, horizon=horizon, copies_per_chunk=1)
        scores = scores * _span_ratio(
            model, input_ids, attention_mask, reasoning_mask, answer_mask, window, span_kw
        )
    return scores.to(input_ids.device)
