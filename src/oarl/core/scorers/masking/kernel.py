"""The OAR-P kernel shared by the masking family: the probe's KL for position groups masked at once.

A masked copy reuses the clean forward's KV cache for its unchanged prefix, recomputes only positions from its
first masked one to the last probe position ``p_max`` (later tokens cannot reach the probe in a causal LM),
applies the LM head only at the probe positions, and copies are batched under a token budget. Singleton
groups give exact OAR-P (:mod:`.exact`); spans give the approximations (:mod:`.span`, :mod:`.horizon`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from oarl.core.model import (
    decoder_hidden,
    default_mask_token_id,
    eval_mode,
    float32_weights,
    gather_positions,
    head_logits,
    position_ids_from_mask,
    prefix_cache,
    reusable_cache,
)
from oarl.core.probes import check_probe, probe_divergence, probe_from_logits, probe_index, probe_targets

#: Recomputed tokens per forward of masked copies (bounds activation memory; raise it on GPUs).
MAX_BATCH_TOKENS = 2048


def _chunks(starts: list[int], p_max: int, max_batch_tokens: int) -> list[range]:
    """Index ranges over ascending ``starts`` (the first position each copy masks) such that a chunk
    recomputes at most ``max_batch_tokens`` tokens (at least one copy)."""
    out, i = [], 0
    while i < len(starts):
        size = max(1, max_batch_tokens // (p_max - starts[i] + 1))
        out.append(range(i, min(i + size, len(starts))))
        i += size
    return out


def masked_group_divergences(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    answer_mask: Tensor,
    groups: Sequence[Sequence[Sequence[int]]],
    write: Callable[[int, Tensor, Tensor], None],
    probe: str,
    mask_id: int,
    max_batch_tokens: int,
    upcast: bool = False,
) -> None:
    """The OAR-P kernel: ``KL(p_clean || p_masked_G)`` of the probe for every position group ``G`` masked at once.

    ``groups[b]`` lists row ``b``'s groups (positions in ``[0, L)``); exact OAR-P is one singleton group per
    reasoning token. Each masked copy reuses the clean forward's KV cache up to its first masked position and
    recomputes only up to the last probe position ``p_max`` (later positions cannot reach the probe); copies
    are batched under ``max_batch_tokens``. Calls ``write(b, group_indices, divergences)`` per batch of copies
    (``divergences``: float32 on the model's device). Groups with no position at or before ``p_max``, and rows
    without an answer span, are never written (their divergence is exactly 0). Runs without gradients.
    """
    positions, valid = probe_index(answer_mask, probe)
    targets = probe_targets(input_ids, positions)
    pos_ids = position_ids_from_mask(attention_mask)
    config = getattr(model, "config", None)
    with torch.no_grad(), eval_mode(model), float32_weights(model, enabled=upcast):
        hidden, cache = decoder_hidden(model, attention_mask, pos_ids, input_ids=input_ids, use_cache=True)
        clean_h = gather_positions(hidden, positions)  # [B, K, D]
        clean = probe_from_logits(head_logits(model, clean_h), valid, targets, probe)
        reuse = reusable_cache(cache)
        for b in range(input_ids.shape[0]):
            if not valid[b].any():
                continue
            p_max = int(positions[b][valid[b]].max())
            kept = [(i, sorted(p for p in g if p <= p_max)) for i, g in enumerate(groups[b])]
            kept = sorted(((i, g) for i, g in kept if g), key=lambda ig: ig[1][0])
            for chunk in _chunks([g[0] for _, g in kept], p_max, max_batch_tokens):
                members = [kept[j][1] for j in chunk]
                t0 = members[0][0] if reuse else 0
                copies = len(chunk)
                ids = input_ids[b, t0 : p_max + 1].repeat(copies, 1)
                copy_of = torch.repeat_interleave(
                    torch.arange(copies), torch.tensor([len(m) for m in members])
                )
                ids[copy_of, torch.tensor([p for m in members for p in m]) - t0] = mask_id
                h_new, _ = decoder_hidden(
                    model,
                    attention_mask[b : b + 1, : p_max + 1].expand(copies, -1),
                    pos_ids[b : b + 1, t0 : p_max + 1].expand(copies, -1),
                    input_ids=ids,
                    past_key_values=prefix_cache(cache, b, t0, copies, config) if reuse else None,
                    use_cache=reuse and t0 > 0,
                )
                # Probe positions before t0 are untouched by every copy in the chunk: keep the clean states.
                h = clean_h[b : b + 1].expand(copies, -1, -1).clone()
                recomputed = valid[b] & (positions[b] >= t0)
                h[:, recomputed] = h_new[:, positions[b][recomputed] - t0]
                masked = probe_from_logits(
                    head_logits(model, h),
                    valid[b : b + 1].expand(copies, -1),
                    targets[b : b + 1].expand(copies, -1),
                    probe,
                )
                div = probe_divergence(clean[b : b + 1].expand_as(masked), masked, probe)
                write(b, torch.tensor([kept[j][0] for j in chunk]), div.float())


def group_divergences(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    answer_mask: Tensor,
    groups: Sequence[Sequence[Sequence[int]]],
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
) -> list[Tensor]:
    """``KL(p_clean || p_masked_G)`` of the probe for every position group ``G`` masked at once.

    Args:
        model: a transformers causal LM (eval mode inside; modes restored).
        input_ids, attention_mask, answer_mask: ``[B, L]`` as in ``perturbation_scores``.
        groups: per row ``b``, a list of position groups (each a list of positions in ``[0, L)``).
        probe, mask_token_id, max_batch_tokens: as in ``perturbation_scores``.

    Returns:
        per row, a float32 tensor ``[len(groups[b])]``; 0 for groups with no position at or before the last
        probe position (they cannot change the probe) and in rows without an answer span.
    """
    check_probe(probe)
    mask_id = default_mask_token_id(model, mask_token_id)
    B = input_ids.shape[0]
    if len(groups) != B:
        raise ValueError(f"groups has {len(groups)} rows, input_ids {B}")
    out = [torch.zeros(len(g), dtype=torch.float32) for g in groups]

    def write(b: int, group: Tensor, div: Tensor) -> None:
        out[b][group] = div.cpu()

    masked_group_divergences(
        model, input_ids, attention_mask, answer_mask, groups, write, probe, mask_id, max_batch_tokens
    )
    return out


def reasoning_spans(
    input_ids: Tensor, reasoning_mask: Tensor, window: int, step_end_ids: Sequence[int] | None = None
) -> list[list[list[int]]]:
    """Per row, the reasoning positions cut into spans.

    Windows of ``window`` consecutive reasoning tokens; or, with ``step_end_ids``, reasoning steps (a step
    ends after a token whose id is in ``step_end_ids``), each further cut into windows of at most ``window``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    ends = set(int(t) for t in step_end_ids) if step_end_ids is not None else None
    out = []
    for b in range(input_ids.shape[0]):
        ts = reasoning_mask[b].bool().nonzero().flatten().tolist()
        steps: list[list[int]] = [[]]
        for t in ts:
            steps[-1].append(t)
            if ends is not None and int(input_ids[b, t]) in ends:
                steps.append([])
        spans = [s[i : i + window] for s in steps if s for i in range(0, len(s), window)]
        out.append(spans)
    return out
