"""Baseline scorers with the scorer signature: policy entropy, random, uniform and oracle importance."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import decoder_hidden, eval_mode, head_logits
from oarl.core.scorers.registry import ScorerSpec, register_scorer


@register_scorer(ScorerSpec("entropy", "controls", frozenset({"model"}), "control", "forward"))
@torch.no_grad()
def entropy_scores(
    model: nn.Module,
    layout: Layout,
) -> Tensor:
    """Policy entropy at each reasoning token: ``H(softmax(logits[t-1]))``, the step that sampled token t.

    Returns ``[B, L]`` float32, 0 outside ``reasoning_mask`` (and at position 0, which nothing predicts).
    """
    input_ids, attention_mask, reasoning_mask = layout.input_ids, layout.attention_mask, layout.reasoning_mask
    scores = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    predicting = torch.zeros_like(reasoning_mask, dtype=torch.bool)
    predicting[:, :-1] = reasoning_mask[:, 1:].bool()
    if not predicting.any():
        return scores
    with eval_mode(model):
        hidden, _ = decoder_hidden(model, attention_mask, layout.position_ids, input_ids=input_ids)
        logp = torch.log_softmax(head_logits(model, hidden[predicting]).float(), dim=-1)
    rows, cols = predicting.nonzero(as_tuple=True)
    scores[rows, cols + 1] = -(logp.exp() * logp).sum(-1)
    return scores


@register_scorer(ScorerSpec("random", "controls", frozenset({"randomness"}), "control", "none"))
def random_scores(
    model: nn.Module | None,
    layout: Layout,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform random importance in [0, 1) at reasoning tokens (a control for any scorer). ``[B, L]``."""
    ids = layout.input_ids
    noise = torch.rand(ids.shape, generator=generator, device=ids.device)
    return noise * layout.reasoning_mask.float()


@register_scorer(ScorerSpec("uniform", "controls", frozenset(), "control", "none"))
def uniform_scores(
    model: nn.Module | None,
    layout: Layout,
) -> Tensor:
    """Equal importance for every reasoning token: gating turns it into all-ones weights (= plain GRPO)."""
    return layout.reasoning_mask.float()


@register_scorer(ScorerSpec("oracle", "controls", frozenset({"oracle_labels"}), "control", "none"))
def oracle_scores(
    model: nn.Module | None,
    layout: Layout,
    oracle_mask: Tensor | None = None,
) -> Tensor:
    """Importance 1 at the known decisive tokens (``oracle_mask[B, L]``), 0 elsewhere: the ceiling of any scorer.

    Only a task with labelled tokens can provide ``oracle_mask`` (the testbed does, through the trainer's
    ``token_labeler``); through the gate it gives the decisive tokens the boost and the rest the floor.
    """
    input_ids, reasoning_mask = layout.input_ids, layout.reasoning_mask
    if oracle_mask is None:
        raise ValueError(
            "the 'oracle' scorer needs per-token labels (oracle_mask); pass token_labeler= to OARGRPOTrainer "
            "(the testbed tasks provide one)"
        )
    if oracle_mask.shape != input_ids.shape:
        raise ValueError(
            f"oracle_mask has shape {tuple(oracle_mask.shape)}, expected {tuple(input_ids.shape)}"
        )
    return (oracle_mask.bool() & reasoning_mask.bool()).float()
