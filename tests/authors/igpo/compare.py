"""oarl's ``info_gain`` against IGPO's information-gain turn reward (adapted excerpt in this folder).

A row is ``before + reasoning + conclude + answer``; IGPO's turns are oarl's steps (``step_token_ids``; with
none, every reasoning token is a turn), its pseudo response is ``conclude + answer`` (bridge + ground truth).
The quantity both define at every cut (the prompt, then each step's end): the answer's teacher-forced
likelihood after the prefix and the bridge. IGPO reads it as ``exp(mean log p)`` (geometric-mean token
probability), oarl as ``sum log p``, so the comparison maps oarl's ``F`` to ``exp(F / A)``. The gains then
differ by the transformation (a difference of probabilities against a difference of log-probabilities): same
sign, ranks compared by Spearman.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from authors_common import max_rel, rho
from igpo.info_gain import info_gain_rewards

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer
from oarl.core.scorers.information.info_gain import _suffix, answer_logprobs

PARTS = ("before", "reasoning", "conclude", "answer")


def layout_of(seg: dict[str, list[int]]) -> Layout:
    parts = [seg[k] for k in PARTS]
    ids = torch.tensor([sum(parts, [])])
    role = torch.tensor(sum(([i] * len(x) for i, x in enumerate(parts)), []))[None]
    return Layout(ids, torch.ones_like(ids), role == 1, role == 3)


def step_ends(reasoning: list[int], step_ids: tuple[int, ...]) -> list[int]:
    """Indices (in the reasoning) of each step's last token: a delimiter or the last reasoning token."""
    if not step_ids:
        return list(range(len(reasoning)))
    ends = [i for i, t in enumerate(reasoning) if t in step_ids]
    if not ends or ends[-1] != len(reasoning) - 1:
        ends.append(len(reasoning) - 1)
    return ends


def measure_row(model, seg: dict[str, list[int]], step_ids: tuple[int, ...] = ()) -> dict:
    before, reasoning, conclude, answer = (seg[k] for k in PARTS)
    ends = step_ends(reasoning, step_ids)
    contexts = [before] + [before + reasoning[: e + 1] for e in ends]
    p_theirs, g_theirs = info_gain_rewards(model, contexts, conclude, answer, [])
    lay = layout_of(seg)
    cuts = torch.tensor([[len(before) - 1] + [len(before) + e for e in ends]])
    suffix = _suffix(
        lay.attention_mask.bool(), lay.reasoning_mask.bool(), lay.answer_mask.bool(), torch.tensor([True])
    )
    F = answer_logprobs(model, lay, cuts, torch.ones_like(cuts, dtype=torch.bool), suffix, 64)[0]
    p_ours = torch.exp(F / len(answer)).tolist()
    scores = get_scorer("info_gain")(model, lay, step_token_ids=tuple(step_ids))[0]
    g_ours = [float(scores[len(before) + e]) for e in ends]  # every token of a step holds the step's gain
    return {"p_theirs": p_theirs, "p_ours": p_ours, "g_theirs": g_theirs, "g_ours": g_ours}


def measure(model, segs: list[dict], step_ids: tuple[int, ...] = ()) -> dict:
    rows = [measure_row(model, s, step_ids) for s in segs]
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    same_sign = np.sign(cat["g_theirs"]) == np.sign(cat["g_ours"])
    rhos = [rho(r["g_theirs"], r["g_ours"]) for r in rows]
    return {
        "rows": len(rows),
        "cuts": int(cat["p_theirs"].size),
        "max_rel_answer_likelihood": max_rel(cat["p_theirs"], cat["p_ours"]),
        "gain_sign_agree": float(np.mean(same_sign)),
        "gain_spearman_pooled": rho(cat["g_theirs"], cat["g_ours"]),
        "gain_spearman_row_mean": float(np.nanmean(rhos))
        if not all(math.isnan(x) for x in rhos)
        else math.nan,
    }
