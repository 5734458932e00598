"""oarl's ``prime`` against PRIME's released ``compute_implicit_reward`` (excerpt in this folder).

The per-token quantity both define: the implicit process reward of each response token. PRIME's code returns
``q_t = log pi_phi(y_t) - log pi_ref(y_t)`` (``prime_granularity="token"``); its ``beta`` (0.05) enters only the
PRM's cross-entropy loss, and ``prime_norm="batch_norm"`` then divides by the batch's largest absolute return,
so the scale is set there. oarl's ``prime`` (``credit="reward"``) scores the paper's ``beta * q_t``; the
comparison divides it by ``beta``. Both read the same two models (``pi_phi``: the PRM, in oarl the ``model``
argument; ``pi_ref``: the frozen reference).
"""

from __future__ import annotations

import torch
from authors_common import GroupBatch, max_rel
from prime.implicit_reward import DataParallelPRIME

from oarl.core.scorers import get_scorer


def theirs(phi, ref, gb: GroupBatch) -> torch.Tensor:
    """PRIME's token-level scores ``[B, T]`` (response positions). verl's batch: prompt left-padded, response
    right-padded, ``input_ids = prompt + response``."""
    prompts = [p for p, _, _ in gb.rows]
    P = max(len(p) for p in prompts)
    T = gb.responses.shape[1]
    B = len(prompts)
    ids = torch.zeros(B, P + T, dtype=torch.long)
    attn = torch.zeros(B, P + T, dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, P - len(p) : P] = torch.tensor(p)
        attn[b, P - len(p) : P] = 1
    ids[:, P:] = gb.responses
    attn[:, P:] = gb.eos_mask.long()
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    batch = {"responses": gb.responses, "input_ids": ids, "attention_mask": attn, "position_ids": pos}
    prm = DataParallelPRIME("token")
    with torch.no_grad():
        lp = prm._forward_micro_batch(phi, batch, P, no_grad=True)
        lp_ref = prm._forward_micro_batch(ref, batch, P, no_grad=True)
    score, _ = prm.compute_implicit_reward(batch, lp, lp_ref)
    return score


def measure(phi, ref, gb: GroupBatch, beta: float = 0.05) -> dict:
    t = theirs(phi, ref, gb)
    o = get_scorer("prime")(phi, gb.layout, reference_model=ref, beta=beta, credit="reward").double()
    ours = torch.zeros_like(t, dtype=torch.float64)
    for b, cols in enumerate(gb.completion_cols):
        ours[b, : len(cols)] = o[b, cols] / beta
    m = gb.eos_mask.bool()
    return {"tokens": int(m.sum()), "max_rel_q": max_rel(t[m].double().numpy(), ours[m].numpy()),
            "max_abs_q": float(t[m].abs().max())}  # fmt: skip
