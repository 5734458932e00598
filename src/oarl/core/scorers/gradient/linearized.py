"""Linearised counterfactual: OAR-P's own replacement ``e_t -> e_mask``, estimated to first order in one pass.

OAR-P scores ``KL(p_clean || p_{t <- mask})``. Write ``z`` for the probe's logits (the mean over the answer
positions for AS-Mean, the first one for LT-Logits) and ``d_t = e_mask - e_t`` for the replacement at t. The KL
has zero gradient at the clean point, but to second order it is the Fisher quadratic form of the logit change,
``KL ~ 1/2 Var_{y ~ p}(dz_y)``, and the logit change is first order: ``dz_y ~ <grad_e z_y, d_t>``. So

    score_t = 1/2 * sum_{y in top-M} p_y (dz_y,t - sum_y' p_y' dz_y',t)^2,   dz_y,t = <grad_{e_t} z_y, d_t>,

over the ``M = fisher_classes`` likeliest outcomes and one bucket holding all the others (the coarse-grained
distribution's KL, a lower bound of the full one and equal to it when the rest bucket moves as one; answer
distributions are peaked, so M = 2 already holds nearly all of the mass). Cost: one forward and M + 1
backwards for the whole batch (OAR-G: two forwards and one backward).
For AS-Joint (a scalar log-probability ``J``) the drop is first order already: ``score_t = -<grad_{e_t} J, d_t>``
(signed, like OAR-P's AS-Joint). How good the first-order step is depends on how linear the model is over the
distance ``|e_mask - e_t|``; docs/fidelity.md measures it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import (
    decoder_hidden,
    default_mask_token_id,
    eval_mode,
    float32_weights,
    gather_positions,
    head_logits,
    position_ids_from_mask,
)
from oarl.core.probes import EmbeddingProbe, check_probe, probe_from_logits, probe_logits
from oarl.core.scorers.registry import ScorerSpec, register_scorer


def coarse_logits(z: Tensor, classes: int) -> Tensor:
    """The outcome distribution coarse-grained to its ``classes`` likeliest outcomes plus one "rest" bucket.

    ``z[B, V]`` logits -> ``[B, M + 1]`` logits whose softmax is exactly ``(p_top1, ..., p_topM, p_rest)``
    (the rest bucket's logit is the log-sum-exp of the others). ``M = min(classes, V - 1)``; the top set is
    chosen without gradient.
    """
    M = max(1, min(classes, z.shape[-1] - 1))
    top = z.detach().topk(M, dim=-1).indices
    rest = z.scatter(1, top, float("-inf")).logsumexp(-1, keepdim=True)
    return torch.cat([z.gather(1, top), rest], dim=-1)


def fisher_quadratic(deltas: Tensor, probs: Tensor) -> Tensor:
    """``1/2 Var_p(delta)`` per token: ``deltas[B, L, M]`` logit changes, ``probs[B, M]`` (sums to 1) -> ``[B, L]``."""
    p = probs.unsqueeze(1)
    mean = (deltas * p).sum(-1, keepdim=True)
    return 0.5 * ((deltas - mean).pow(2) * p).sum(-1)


@register_scorer(
    ScorerSpec("linearized", "gradient", frozenset({"model", "gradients"}), "recommended", "backward")
)
def linearized_scores(
    model: nn.Module,
    layout: Layout,
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    fisher_classes: int = 2,
    upcast: bool = False,
) -> Tensor:
    """First-order estimate of OAR-P's ``KL(p_clean || p_{t <- mask})`` for every token at once.

    Args:
        model, layout: as :func:`perturbation_scores`.
        probe: ``"lt_logits"``, ``"as_mean"`` or ``"as_joint"`` (signed first-order drop of the answer's
            mean log-probability).
        mask_token_id: the replacement OAR-P uses (default: the model's pad token).
        fisher_classes: outcomes ``M >= 1`` kept apart in the Fisher quadratic form; the others form one
            "rest" bucket (M + 1 backwards).
        upcast: run in float32 (:func:`oarl.core.model.float32_weights`), as in :func:`gradient_scores`.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask`` and in rows without an answer span.
    """
    check_probe(probe)
    input_ids, attention_mask, reasoning_mask, answer_mask = layout.tensors
    if fisher_classes < 1:
        raise ValueError(f"fisher_classes must be >= 1, got {fisher_classes}")
    mask_id = default_mask_token_id(model, mask_token_id)
    probe_of = EmbeddingProbe(model, input_ids, attention_mask, answer_mask, probe)
    positions, valid, row_valid = probe_of.positions, probe_of.valid, probe_of.row_valid
    embed = model.get_input_embeddings()
    with eval_mode(model), float32_weights(model, enabled=upcast), torch.enable_grad():
        e = embed(input_ids).detach().requires_grad_(True)
        d = (embed.weight[mask_id].detach() - e.detach()).float()  # [B, L, D], d_t = e_mask - e_t
        hidden, _ = decoder_hidden(
            model, attention_mask, position_ids_from_mask(attention_mask), inputs_embeds=e
        )
        logits = head_logits(model, gather_positions(hidden, positions))
        if probe == "as_joint":
            J = probe_from_logits(logits, valid, probe_of.targets, probe)
            (g,) = torch.autograd.grad((J * row_valid).sum(), e)
            scores = -(g.float() * d).sum(-1)
        else:
            z = probe_logits(logits, valid, probe)  # [B, V]
            coarse = coarse_logits(z, fisher_classes)  # [B, M + 1]
            probs = coarse.detach().softmax(-1)
            deltas = []
            for m in range(
                coarse.shape[-1]
            ):  # rows are independent: one backward of the row sum serves all rows
                (g,) = torch.autograd.grad(coarse[:, m].sum(), e, retain_graph=m < coarse.shape[-1] - 1)
                deltas.append((g.float() * d).sum(-1))
            scores = fisher_quadratic(torch.stack(deltas, -1), probs)
    return scores.detach() * probe_of.scored(reasoning_mask)
