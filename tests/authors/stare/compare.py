"""oarl's ``stare`` against STARE's released ``compute_stare_token_weights`` and ``STAREController`` (excerpt in
this folder) on the same batch.

The per-token quantity both define: the weight ``omega_t`` (W on the top-P% surprisal tokens of the positive-
advantage set, M on those of the negative set for C2, 1 elsewhere; all 1 while the gate is off). Their side:
log-probabilities and the gate's batch entropy (token mean over the response) from one plain forward, GRPO
advantages, the controller updated once with that entropy. Their response is the whole completion; oarl's
candidates are the reasoning tokens, so a layout with an answer span shows what that changes.
"""

from __future__ import annotations

import torch
from authors_common import GroupBatch
from model_inputs import forward_stats, grpo_advantages, with_answer
from stare.stare_weights import STAREController, compute_stare_token_weights

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer


def theirs(model, lay: Layout, response: torch.Tensor, variant: str, top_p_ratio: float,
           target_entropy: float) -> tuple[torch.Tensor, float]:  # fmt: skip
    logp, ent = forward_stats(model, lay.input_ids, lay.attention_mask)
    mask = response.float()
    entropy_agg = float((ent * mask).sum() / mask.sum())  # agg_loss(..., "token-mean")
    ctrl = STAREController(target_entropy=target_entropy, reweight_w=1.1, reweight_m=0.9)
    ctrl.update(entropy_agg)
    adv = grpo_advantages(lay).float()[:, None] * mask
    cfg = {"stare": {"enabled": True, "variant": variant, "top_p_ratio": top_p_ratio, "reweight_w": 1.1,
                     "reweight_m": 0.9, "target_entropy": target_entropy}}  # fmt: skip
    w, _ = compute_stare_token_weights(logp, adv, mask, cfg, ctrl.__dict__)
    return w, entropy_agg


def measure(model, gb: GroupBatch, variant: str = "C2", top_p_ratio: float = 0.2,
            target_entropy: float = 1e9) -> dict:  # fmt: skip
    lay = gb.layout
    resp = lay.reasoning_mask.bool()
    w_t, h = theirs(model, lay, resp, variant, top_p_ratio, target_entropy)
    w_o = get_scorer("stare")(
        model, lay, variant=variant, top_p_ratio=top_p_ratio, target_entropy=target_entropy
    )
    diff = (w_t - w_o).abs()[resp]
    # With an answer span: STARE's response still holds it, oarl's candidates are the reasoning tokens.
    lay_a = with_answer(gb)
    w_ta, _ = theirs(model, lay_a, resp, variant, top_p_ratio, target_entropy)
    w_oa = get_scorer("stare")(
        model, lay_a, variant=variant, top_p_ratio=top_p_ratio, target_entropy=target_entropy
    )
    r = lay_a.reasoning_mask.bool()
    return {
        "tokens": int(resp.sum()),
        "reweighted_theirs": int((w_t[resp] != 1).sum()),
        "max_abs_weight_diff": float(diff.max()),
        "tokens_differing": int((diff > 1e-6).sum()),
        "batch_entropy": h,
        "with_answer_tokens_differing_on_reasoning": int(((w_ta - w_oa).abs()[r] > 1e-6).sum()),
        "with_answer_answer_tokens_reweighted_theirs": int((w_ta[lay_a.answer_mask.bool()] != 1).sum()),
    }
