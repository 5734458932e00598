"""Slow, obviously-correct reference scorers: the ground truth for tests and the naive baseline for benchmarks.

``naive_perturbation_scores`` is the paper's OAR-P as written: one full forward with full-vocabulary logits
at every position per masked copy, with the copies of a row batched (``copies_per_forward``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.model import default_mask_token_id, eval_mode, full_logits
from oarl.core.probes import outcome_probe, probe_divergence, probe_index


@torch.no_grad()
def naive_perturbation_scores(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    reasoning_mask: Tensor,
    answer_mask: Tensor,
    probe: str = "as_mean",
    mask_token_id: int | None = None,
    copies_per_forward: int = 1,
) -> Tensor:
    """OAR-P by brute force: for every reasoning token, a full forward of the masked sequence. ``[B, L]``."""
    mask_id = default_mask_token_id(model, mask_token_id)
    scores = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    _, valid = probe_index(answer_mask, probe)
    with eval_mode(model):
        for b in range(input_ids.shape[0]):
            if not valid[b].any():
                continue
            row = (t.narrow(0, b, 1) for t in (input_ids, attention_mask, answer_mask))
            ids, am, ans = row
            clean = outcome_probe(full_logits(model, ids, am), ids, ans, probe)
            ts = reasoning_mask[b].bool().nonzero().flatten().tolist()
            for i in range(0, len(ts), copies_per_forward):
                chunk = ts[i : i + copies_per_forward]
                n = len(chunk)
                masked_ids = ids.repeat(n, 1)
                masked_ids[torch.arange(n), torch.tensor(chunk)] = mask_id
                logits = full_logits(model, masked_ids, am.expand(n, -1))
                masked = outcome_probe(logits, masked_ids, ans.expand(n, -1), probe)
                scores[b, torch.tensor(chunk)] = probe_divergence(
                    clean.expand_as(masked), masked, probe
                ).float()
    return scores
