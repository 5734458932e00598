"""OAR-P: perturbation scores, ``score_t = KL(p_clean || p_masked_t)`` of the outcome probe.

For each reasoning token t the token is replaced by ``mask_token_id`` and the probe is recomputed. Done
naively this is one full forward with full-vocabulary logits per token (the paper's 4.2x step overhead).
Here (:func:`masked_group_divergences`, also the kernel of the approximate scorers) a masked copy reuses the
clean forward's KV cache for its unchanged prefix, recomputes only positions ``t .. p_max`` (the last probe
position; later tokens cannot reach the probe in a causal LM), applies the LM head only at the probe
positions, and copies are batched under a token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from oarl.core.model import (
    check_layout,
    decoder_hidden,
    default_mask_token_id,
    eval_mode,
    float32_weights,
    gather_positions,
    head_logits,
    position_ids_from_mask,
)
from oarl.core.probes import check_probe, probe_divergence, probe_from_logits, probe_index, probe_targets
from oarl.core.scorers.registry import ScorerSpec, register_scorer

#: Recomputed tokens per forward of masked copies (bounds activation memory; raise it on GPUs).
MAX_BATCH_TOKENS = 2048


def _prefix_cache(
    cache: DynamicCache | None, row: int, length: int, copies: int, config
) -> DynamicCache | None:
    """The clean cache of ``row`` cut to its first ``length`` positions, repeated ``copies`` times."""
    if cache is None or length == 0:
        return None
    data = [
        (
            layer.keys[row : row + 1, :, :length].expand(copies, -1, -1, -1),
            layer.values[row : row + 1, :, :length].expand(copies, -1, -1, -1),
        )
        for layer in cache.layers
    ]
    return DynamicCache(ddp_cache_data=data, config=config)


def _reusable(cache) -> bool:
    # Sliding-window or other exotic layers keep a truncated history: recompute from the start instead.
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


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
        reuse = _reusable(cache)
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
                    past_key_values=_prefix_cache(cache, b, t0, copies, config) if reuse else None,
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


@register_scorer(
    ScorerSpec("perturbation", "masking", frozenset({"model"}), "recommended", "quadratic", label="OAR-P")
)
def perturbation_scores(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    reasoning_mask: Tensor,
    answer_mask: Tensor,
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    upcast: bool = False,
) -> Tensor:
    """OAR-P token importance (paper: ``KL(p_clean || p_masked)`` of the outcome probe).

    Args:
        model: a transformers causal LM (run in eval mode here; modes are restored).
        input_ids, attention_mask: ``[B, L]`` prompt + reasoning + answer, left or right padded.
        reasoning_mask: ``[B, L]`` positions to perturb.
        answer_mask: ``[B, L]`` answer-span tokens the probe reads.
        probe: ``"lt_logits"``, ``"as_mean"`` or ``"as_joint"`` (score = clean minus masked mean log-prob).
        mask_token_id: replacement token (default: ``model.config.pad_token_id``).
        max_batch_tokens: recomputed tokens per forward; bounds activation memory.
        upcast: score in float32 (:func:`oarl.core.model.float32_weights`; bf16/fp16 weights upcast in place
            and restored). In bf16 the recomputed copies and the clean pass round differently, a noise floor
            under the small scores (README, "GPU / scale"); costs 4 bytes per parameter while scoring.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask`` and in rows without an answer span.
    """
    check_probe(probe)
    check_layout(input_ids, attention_mask, reasoning_mask, answer_mask)
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
    B, L = input_ids.shape
    scores = torch.zeros(B, L, dtype=torch.float32, device=input_ids.device)
    tokens = [reasoning_mask[b].bool().nonzero().flatten() for b in range(B)]

    def write(b: int, group: Tensor, div: Tensor) -> None:
        scores[b, tokens[b][group.to(tokens[b].device)]] = div

    singletons = [[[t] for t in ts.tolist()] for ts in tokens]
    mask_id = default_mask_token_id(model, mask_token_id)
    masked_group_divergences(
        model,
        input_ids,
        attention_mask,
        answer_mask,
        singletons,
        write,
        probe,
        mask_id,
        max_batch_tokens,
        upcast,
    )
    return scores
