"""OAR-P: perturbation scores, ``score_t = KL(p_clean || p_masked_t)`` of the outcome probe.

For each reasoning token t the token is replaced by ``mask_token_id`` and the probe is recomputed. Done
naively this is one full forward with full-vocabulary logits per token (the paper's 4.2x step overhead;
:mod:`oarl.core.scorers.reference.naive`). Here every token is a singleton group of the masking kernel
(:func:`.kernel.masked_group_divergences`): cached prefixes, recomputation only up to the last probe position,
the LM head only at the probe positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import default_mask_token_id
from oarl.core.probes import check_probe
from oarl.core.scorers.masking.kernel import MAX_BATCH_TOKENS, masked_group_divergences
from oarl.core.scorers.registry import ScorerSpec, register_scorer


@register_scorer(
    ScorerSpec("perturbation", "masking", frozenset({"model"}), "recommended", "quadratic", label="OAR-P")
)
def perturbation_scores(
    model: nn.Module,
    layout: Layout,
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    upcast: bool = False,
) -> Tensor:
    """OAR-P token importance (paper: ``KL(p_clean || p_masked)`` of the outcome probe).

    Args:
        model: a transformers causal LM (run in eval mode here; modes are restored).
        layout: the rows (:class:`~oarl.core.layout.Layout`): its reasoning tokens are perturbed, its answer
            tokens are what the probe reads.
        probe: ``"lt_logits"``, ``"as_mean"`` or ``"as_joint"`` (score = clean minus masked mean log-prob).
        mask_token_id: replacement token (default: ``model.config.pad_token_id``).
        max_batch_tokens: recomputed tokens per forward; bounds activation memory.
        upcast: score in float32 (:func:`oarl.core.model.float32_weights`; bf16/fp16 weights upcast in place
            and restored). In bf16 the recomputed copies and the clean pass round differently, a noise floor
            under the small scores (docs/gpu.md); costs 4 bytes per parameter while scoring.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask`` and in rows without an answer span.
    """
    check_probe(probe)
    input_ids, attention_mask, reasoning_mask, answer_mask = layout.tensors
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
