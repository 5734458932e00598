"""Per-token statistics of the sampled tokens from one forward: log-probability, entropy, raw logits.

``token_stats(model, layout, mask)`` runs the decoder once over the rows that have a ``mask`` token and applies
the LM head only at the positions predicting them (in chunks, so the ``[N, V]`` logits stay bounded). The
statistic of token ``t`` is read at position ``t - 1``, the step that sampled it; position 0 (predicted by
nothing) gives 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import decoder_hidden, eval_mode, head_logits

#: Predicting positions per LM-head chunk (bounds the ``[N, V]`` float32 logits of one chunk).
CHUNK = 512


@torch.no_grad()
def hidden_at(model: nn.Module, layout: Layout, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The final hidden states that predict each ``mask`` token: ``(rows[n], positions[N, 2], hidden[N, D],
    taken[N])``: ``positions`` the ``(row, column)`` of each token in ``layout``, ``taken`` its id. The decoder
    runs once, in eval mode, over the ``n`` rows that have a ``mask`` token (not at column 0)."""
    ids = layout.input_ids
    mask = mask.bool().clone()
    mask[:, 0] = False  # nothing predicts position 0
    rows = mask.any(-1).nonzero().flatten()
    if len(rows) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=ids.device)
        return rows, torch.zeros(0, 2, dtype=torch.long, device=ids.device), torch.zeros(0, 1), empty
    sub = layout.rows(rows)
    predicting = torch.zeros_like(mask[rows])
    predicting[:, :-1] = mask[rows, 1:]
    with eval_mode(model):
        hidden, _ = decoder_hidden(model, sub.attention_mask, sub.position_ids, input_ids=sub.input_ids)
    r, c = predicting.nonzero(as_tuple=True)
    return rows, torch.stack([rows[r], c + 1], -1), hidden[r, c], sub.input_ids[r, c + 1]


@torch.no_grad()
def map_logits(
    model: nn.Module, layout: Layout, mask: Tensor, fn: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    """``fn(logits[N, V] float32, taken[N] long) -> [N, k]`` at each ``mask`` token (``logits`` predict it,
    ``taken`` is its id), scattered back: ``[B, L, k]`` float32, 0 elsewhere (``k = 1`` when no token)."""
    ids = layout.input_ids
    _, pos, h, taken = hidden_at(model, layout, mask)
    if len(taken) == 0:
        return torch.zeros(*ids.shape, 1, dtype=torch.float32, device=ids.device)
    with eval_mode(model):
        parts = [
            fn(head_logits(model, h[i : i + CHUNK]).float(), taken[i : i + CHUNK])
            for i in range(0, len(h), CHUNK)
        ]
    values = torch.cat(parts).float()
    out = torch.zeros(*ids.shape, values.shape[-1], dtype=torch.float32, device=ids.device)
    out[pos[:, 0], pos[:, 1]] = values
    return out


def _logp_entropy(logits: Tensor, taken: Tensor) -> Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return torch.stack([logp.gather(-1, taken[:, None]).squeeze(-1), entropy], -1)


def token_stats(model: nn.Module, layout: Layout, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(logp, entropy)``, each ``[B, L]`` float32: ``log pi(y_t | y_<t)`` of the sampled token and the entropy
    ``H(pi(. | y_<t))`` of the step that sampled it, at each ``mask`` token; 0 elsewhere. One forward."""
    stats = map_logits(model, layout, mask, _logp_entropy)
    if stats.shape[-1] == 1:  # no token to score
        return stats[..., 0], stats[..., 0]
    return stats[..., 0], stats[..., 1]


def advantage_sign(layout: Layout, name: str) -> Tensor:
    """``[B]`` float: the sign of each row's reward against its group's mean (+1, -1; 0 at the mean, for a
    non-finite reward, or for a row alone in its group): the sign of GRPO's group-normalised advantage."""
    if layout.group_ids is None or layout.rewards is None:
        raise ValueError(
            f"the {name!r} scorer needs layout.group_ids and layout.rewards (needs group_rewards)"
        )
    rewards = layout.rewards.double()
    sign = torch.zeros_like(rewards)
    for g in layout.group_ids.unique():
        rows = ((layout.group_ids == g) & torch.isfinite(rewards)).nonzero().flatten()
        if len(rows) >= 2:
            d = rewards[rows] - rewards[rows].mean()
            tie = d.abs() <= 1e-9 * (1 + rewards[rows].abs().max())  # at the mean up to rounding: A = 0
            sign[rows] = torch.where(tie, torch.zeros_like(d), torch.sign(d))
    return sign
