"""oarl's ``resample`` against VinePPO's Monte-Carlo value and step advantages (excerpt in this folder).

VinePPO samples its rollouts with vLLM; what its code computes from them is ``V(state) = mean reward of the
rollouts`` (a rollout cut by the length limit scores the unfinished penalty) and, per step,
``A_i = r_i + V_{i+1} - V_i`` with ``V`` of the terminal state 0 and the reward on the last step. Run on the
rollouts oarl drew (recorded through ``reward_fn``), the step advantages are compared with oarl's ``dV`` per
step. VinePPO's steps cover the whole response: here the reasoning steps, then the rest (bridge + answer) as
the last step, whose advantage ``R - V_n`` oarl does not score (it is outside the reasoning). Randomness:
VinePPO's and oarl's own draws differ, so the spread of oarl's credit between two seeds (Spearman) is the
noise level any comparison of independent draws would sit under.
"""

from __future__ import annotations

import numpy as np
import torch
from authors_common import max_rel, rho
from vineppo.mc_advantages import _compute_mc_value, _compute_step_advantages

from oarl.core.layout import Layout
from oarl.core.scorers.information.info_gain import cut_points
from oarl.core.scorers.resampling.resample import own_rewards, resample_values


def measure(model, lay: Layout, reward_fn, steps: tuple[int, ...], eos: int, k: int = 4, max_new_tokens: int = 16,
            temperature: float = 1.0, seed: int = 0, penalty: float = 0.0) -> dict:  # fmt: skip
    """``reward_fn(row, sequences)`` as oarl's (full token lists). Returns the agreement numbers."""
    calls: list = []  # oarl asks reward_fn once per cut, in its cut order, with the cut's k sequences

    def recording(row: int, seqs: list[list[int]]) -> list[float]:
        rewards = list(reward_fn(row, seqs))
        calls.append((row, seqs, rewards))
        return rewards

    values = resample_values(model, lay, recording, torch.Generator().manual_seed(seed), k=k,
                             max_new_tokens=max_new_tokens, temperature=temperature, eos_token_id=eos,
                             step_token_ids=steps)  # fmt: skip
    other = resample_values(model, lay, reward_fn, torch.Generator().manual_seed(seed + 1), k=k,
                            max_new_tokens=max_new_tokens, temperature=temperature, eos_token_id=eos,
                            step_token_ids=steps)  # fmt: skip
    own = own_rewards(lay, reward_fn)
    ids, attn, reasoning = lay.input_ids, lay.attention_mask.bool(), lay.reasoning_mask.bool()
    after, before = cut_points(attn, reasoning, steps, ids)
    rows = reasoning.any(-1).nonzero().flatten().tolist()
    cols = {b: reasoning[b].nonzero().flatten() for b in rows}
    order = [
        (b, c) for b in rows for c in torch.cat([after[b, cols[b]], before[b, cols[b]]]).unique().tolist()
    ]
    drawn = {cut: call for cut, call in zip(order, calls, strict=True)}  # the same order as resample_values
    out = {}
    for name, pen in (("as_rewarded", None), ("unfinished_penalty", penalty)):
        out[name] = _theirs_vs_ours(rows, cols, after, before, attn, drawn, own, values, eos, pen)
    seed_rho = rho(values.change[reasoning].numpy(), other.change[reasoning].numpy())
    return {
        "steps": out["as_rewarded"]["steps"],
        "max_rel_same_draws_truncated_as_rewarded": out["as_rewarded"]["max_rel"],
        "max_rel_same_draws_unfinished_penalty": out["unfinished_penalty"]["max_rel"],
        "rollouts": out["as_rewarded"]["rollouts"],
        "rollouts_truncated": out["as_rewarded"]["truncated"],
        "spearman_oarl_seed_vs_seed": seed_rho,
        "answer_step_advantages": out["as_rewarded"]["last"],
        "own_rewards_mean": float(np.nanmean(own.numpy())),
    }


def _theirs_vs_ours(rows, cols, after, before, attn, drawn, own, values, eos, penalty) -> dict:
    """VinePPO's step advantages from oarl's draws against oarl's ``dV``; ``penalty`` None: a truncated rollout
    keeps its reward (oarl's rule), else VinePPO's rule (it scores ``penalty``)."""
    n_roll, n_trunc, theirs, ours, last_theirs = 0, 0, [], [], []
    for b in rows:
        n_prefix = attn[b].long().cumsum(-1)  # tokens up to and including each column
        ends = sorted({int(after[b, c]) for c in cols[b].tolist()})
        states = [int(before[b, int(cols[b][0])])] + ends  # V_0 (the prompt), then after each step
        v = []
        for c in states:
            row, seqs, rew = drawn[b, c]
            assert row == b
            rollouts = []
            for s in seqs:
                stop = penalty is None or eos in s[int(n_prefix[c]) :]
                n_roll += 1
                n_trunc += eos not in s[int(n_prefix[c]) :]
                rollouts.append((s, "stop" if stop else "length"))
            table = dict(zip(map(tuple, seqs), rew, strict=False))
            v.append(_compute_mc_value(rollouts=rollouts, unfinished_penalty=penalty or 0.0,
                                       reward_function=lambda q, rol, d, t=table: [t[tuple(rol)]]))  # fmt: skip
        n_steps = len(ends) + 1  # the reasoning steps, then the bridge + answer
        traj = {"step_rewards": [0.0] * (n_steps - 1) + [float(own[b])], "values": v + [None]}
        adv = _compute_step_advantages(traj)
        for i, e in enumerate(ends):
            theirs.append(adv[i])
            ours.append(float(values.change[b, e]))
        last_theirs.append(round(adv[-1], 4))
    return {"steps": len(theirs), "max_rel": max_rel(theirs, ours), "rollouts": n_roll, "truncated": n_trunc,
            "last": last_theirs}  # fmt: skip
