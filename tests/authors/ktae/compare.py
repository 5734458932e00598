"""oarl's ``ktae`` against KTAE's released ``compute_key_tokens.py`` (excerpt in this folder) on the same groups.

The per-token quantity both define: the key-token value of each completion token, before oarl's gate (oarl:
``ktae`` with ``credit="aligned"`` times ``sign(r - mean)``, i.e. :func:`key_token_values` read at the token;
KTAE: ``all_weight``, the value it adds to the advantage). KTAE's default adds a term-frequency (BM25-like)
refinement (``gamma_tf=1``) that oarl leaves out, so the exact comparison runs theirs at ``gamma_tf=0`` and the
default is reported separately.
"""

from __future__ import annotations

import numpy as np
import torch
from authors_common import GroupBatch, max_rel, rho
from ktae.compute_key_tokens import compute_ktae_outcome_advantage_and_keytokens, fisher_exact_test

from oarl.core.scorers import get_scorer
from oarl.core.scorers.group.ktae import fisher_pvalues


def theirs(gb: GroupBatch, gamma_tf: float = 0.0) -> torch.Tensor:
    """KTAE's ``all_weight[B, T]`` (response positions) for the batch."""
    *_, weight = compute_ktae_outcome_advantage_and_keytokens(
        gb.token_level_rewards, gb.responses, gb.eos_mask, gb.index, gamma_tf=gamma_tf, zero_id=None
    )
    return weight


def ours(gb: GroupBatch) -> torch.Tensor:
    """oarl's signed key-token value ``[B, T]`` at the response positions (undoing ``credit="aligned"``'s sign)."""
    lay = gb.layout
    s = get_scorer("ktae")(None, lay, credit="aligned").double()
    sign = torch.zeros(len(gb.rows), dtype=torch.float64)
    for g in lay.group_ids.unique():
        m = lay.group_ids == g
        r = lay.rewards[m].double()
        sign[m] = torch.sign(r - r.mean())
    out = torch.zeros(gb.responses.shape, dtype=torch.float64)
    for b, cols in enumerate(gb.completion_cols):
        out[b, : len(cols)] = s[b, cols] * sign[b]
    return out


def fisher_ties(gb: GroupBatch) -> dict:
    """KTAE's float32 Fisher p-values (no tie tolerance) against oarl's float64 (scipy's 1e-7 tolerance) on
    every token type's contingency table of the batch's groups."""
    tables = []
    for g in np.unique(gb.index.astype(int)):
        rows = [b for b in range(len(gb.rows)) if int(gb.index[b]) == g]
        ok = [gb.rows[b][2] > 0 for b in rows]
        types = {t for b in rows for t in gb.rows[b][1]}
        nc, nw = sum(ok), len(ok) - sum(ok)
        for t in types:
            a = sum(t in gb.rows[b][1] for b, c in zip(rows, ok, strict=True) if c)
            w = sum(t in gb.rows[b][1] for b, c in zip(rows, ok, strict=True) if not c)
            tables.append([a, w, nc - a, nw - w])
    t = torch.tensor(tables, dtype=torch.float32)
    p_theirs = fisher_exact_test(t).double()
    p_ours = fisher_pvalues(t.double())
    d = (p_theirs - p_ours).abs()
    return {
        "tables": len(tables),
        "max_abs_p_diff": float(d.max()),
        "tables_p_diff_over_1e-3": int((d > 1e-3).sum()),
    }


def p_is_one(gb: GroupBatch) -> torch.Tensor:
    """``[B, T]`` bool: the token's table has Fisher p = 1 (oarl's float64, 1e-9): no evidence either way."""
    out = torch.zeros(gb.responses.shape, dtype=torch.bool)
    for b, (_, comp, _) in enumerate(gb.rows):
        rows = [x for x in range(len(gb.rows)) if gb.index[x] == gb.index[b]]
        ok = [gb.rows[x][2] > 0 for x in rows]
        nc, nw = sum(ok), len(ok) - sum(ok)
        for j, t in enumerate(comp):
            a = sum(t in gb.rows[x][1] for x, c in zip(rows, ok, strict=True) if c)
            w = sum(t in gb.rows[x][1] for x, c in zip(rows, ok, strict=True) if not c)
            p = fisher_pvalues(torch.tensor([[a, w, nc - a, nw - w]], dtype=torch.float64))
            out[b, j] = bool(p[0] >= 1 - 1e-9)
    return out


def measure(gb: GroupBatch) -> dict:
    mask = gb.eos_mask.bool()
    one = p_is_one(gb)[mask].numpy()
    ref = ours(gb)[mask].numpy()
    exact = theirs(gb, gamma_tf=0.0)[mask].double().numpy()
    full = theirs(gb, gamma_tf=1.0)[mask].double().numpy()
    return {
        "tokens": int(mask.sum()),
        "max_rel_gamma_tf0": max_rel(exact, ref),
        # KTAE zeroes the Fisher term where p == 1.0 exactly; its float32 p of a p = 1 table is often 1 +- 1e-7,
        # and then the term is exp(-2) instead of 0.
        "tokens_p_one": int(one.sum()),
        "tokens_p_one_misfired": int((one & (np.abs(exact - ref) > 1e-5)).sum()),
        "max_rel_gamma_tf0_p_below_one": max_rel(exact[~one], ref[~one]),
        "max_rel_default_tf": max_rel(full, ref),
        "spearman_default_tf": rho(full, ref),
        "sign_agree_default_tf": float(np.mean(np.sign(full) == np.sign(ref))),
        "fisher": fisher_ties(gb),
    }
