"""Plain-loop references for the issue-35 scorers: one row at a time, unpadded, through the model's own forward."""

from __future__ import annotations

import torch


def row_stats(model, ids: torch.Tensor, am: torch.Tensor, b: int) -> tuple[dict, dict, dict]:
    """``{column: log p(y_t)}``, ``{column: H_t}`` and ``{column: logits[V]}`` of row ``b``'s attended tokens
    (column 0 of the row excluded), from ``model(ids).logits`` on the row alone."""
    cols = am[b].bool().nonzero().flatten().tolist()
    with torch.no_grad():
        logits = model(input_ids=ids[b, cols][None]).logits[0].double()
    logp, ent, raw = {}, {}, {}
    for j in range(1, len(cols)):
        lp = torch.log_softmax(logits[j - 1], -1)
        logp[cols[j]] = float(lp[ids[b, cols[j]]])
        ent[cols[j]] = float(-(lp.exp() * lp).sum())
        raw[cols[j]] = logits[j - 1]
    return logp, ent, raw


def signs(group_ids: torch.Tensor, rewards: torch.Tensor) -> list[float]:
    """The sign of each row's reward against its group's mean."""
    out = []
    for b in range(len(rewards)):
        group = [float(rewards[k]) for k in range(len(rewards)) if int(group_ids[k]) == int(group_ids[b])]
        d = float(rewards[b]) - sum(group) / len(group)
        out.append(0.0 if abs(d) < 1e-9 or len(group) < 2 else (1.0 if d > 0 else -1.0))
    return out
