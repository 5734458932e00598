"""oarl's ``cdpo`` against cDPO's released contrastive estimation and token weights (excerpt in this folder).

The per-token quantity both define: the weight of each completion token, ``p_t = softmax(2 z_pos - z_neg)[y_t]``
(their ``ce_prob``, beta = 1 hard-coded) for a row above its group's mean (their "chosen"), ``1 - p_t`` for one
below (their "rejected"). Their side runs one row at a time on ``prompt + completion`` as the source does
(``tokenizer(question + response)``), and its weights are read at the completion's positions with the
non-Qwen alignment (``ce_prob + [1]``, ``1 - (ce_prob + [0])``); the Qwen branch (``[0] + ce_prob``) is
reported as the shift it makes.
"""

from __future__ import annotations

import numpy as np
import torch
from authors_common import GroupBatch, max_rel
from cdpo.contrastive_estimation import ce_prob, token_weights

from oarl.core.scorers import get_scorer


@torch.no_grad()
def measure(pos_model, neg_model, gb: GroupBatch) -> dict:
    lay = gb.layout
    ours = get_scorer("cdpo")(None, lay, contrast_models=(pos_model, neg_model)).double()
    means = {int(g): float(lay.rewards[lay.group_ids == g].mean()) for g in lay.group_ids.unique()}
    t_all, o_all, shift_all = [], [], []
    for b, (p, c, r) in enumerate(gb.rows):
        ids = torch.tensor(p + c)
        probs = ce_prob(pos_model, neg_model, ids)  # probs[j]: token j + 1
        line = {"pos": {"ce_prob": probs}, "neg": {"ce_prob": probs}}
        chosen, rejected = token_weights(line, "Meta-Llama-3-8B")
        _, rejected_qwen = token_weights(line, "Qwen2.5-7B")
        # The weight of token j sits at index j - 1 of the lists (their per-token log-probs start at token 1).
        idx = torch.arange(len(p), len(p) + len(c)) - 1
        mean = means[int(lay.group_ids[b])]
        if r > mean:
            t = chosen[idx]
        elif r < mean:
            t = rejected[idx]
            shift_all.append((rejected_qwen[idx] - t).abs().max().item())
        else:
            continue
        t_all.append(t.double().numpy())
        o_all.append(ours[b, gb.completion_cols[b]].numpy())
    t_all, o_all = np.concatenate(t_all), np.concatenate(o_all)
    return {"tokens": int(t_all.size), "max_rel_weight": max_rel(t_all, o_all),
            "qwen_branch_max_abs_shift": float(max(shift_all)) if shift_all else 0.0}  # fmt: skip
