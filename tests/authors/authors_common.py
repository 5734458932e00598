"""What every authors'-code comparison shares: the agreement metrics and the inputs (groups of rows for the
group scorers, a tiny model and SmolLM2 rows for the model scorers). Test fixture code, not oarl's package."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from oarl.core.layout import Layout

ROOT = Path(__file__).resolve().parents[2]


def max_rel(a, b) -> float:
    """``max |a - b| / max |b|`` (as ``benchmarks/paper_fidelity.py``): 0 when both are empty."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def rho(a, b) -> float:
    """Spearman's rank correlation (NaN with fewer than 3 points or a constant side)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(spearmanr(a, b).statistic)


@dataclass
class GroupBatch:
    """Groups of ``(prompt ids, completion ids, reward)`` as oarl's :class:`Layout` (right-padded, the whole
    completion is the reasoning) and as verl's tensors (``responses`` right-padded with ``pad``, ``eos_mask``,
    ``index``, ``token_level_rewards`` with the reward on the last response token)."""

    layout: Layout
    responses: torch.Tensor
    eos_mask: torch.Tensor
    index: np.ndarray
    token_level_rewards: torch.Tensor
    rows: list[tuple[list[int], list[int], float]]
    completion_cols: list[list[int]]  # columns of each row's completion in layout.input_ids


def group_batch(groups: list[list[tuple[list[int], list[int], float]]], pad: int = 0) -> GroupBatch:
    rows = [r for g in groups for r in g]
    gid = [i for i, g in enumerate(groups) for _ in g]
    L = max(len(p) + len(c) for p, c, _ in rows)
    T = max(len(c) for _, c, _ in rows)
    B = len(rows)
    ids = torch.full((B, L), pad, dtype=torch.long)
    am = torch.zeros(B, L, dtype=torch.long)
    rm = torch.zeros(B, L, dtype=torch.bool)
    resp = torch.full((B, T), pad, dtype=torch.long)
    eos = torch.zeros(B, T, dtype=torch.float32)
    tlr = torch.zeros(B, T, dtype=torch.float32)
    cols = []
    for b, (p, c, r) in enumerate(rows):
        ids[b, : len(p) + len(c)] = torch.tensor(p + c)
        am[b, : len(p) + len(c)] = 1
        rm[b, len(p) : len(p) + len(c)] = True
        resp[b, : len(c)] = torch.tensor(c)
        eos[b, : len(c)] = 1
        tlr[b, len(c) - 1] = r
        cols.append(list(range(len(p), len(p) + len(c))))
    layout = Layout(ids, am, rm, torch.zeros_like(rm), group_ids=torch.tensor(gid),
                    rewards=torch.tensor([r for *_, r in rows], dtype=torch.float32))  # fmt: skip
    return GroupBatch(layout, resp, eos, np.array(gid, dtype=object), tlr, rows, cols)


def random_groups(n_groups: int = 3, size: int = 8, vocab: int = 12, seed: int = 0, prompt_len: int = 3,
                  lens: tuple[int, int] = (4, 10)) -> list[list[tuple[list[int], list[int], float]]]:  # fmt: skip
    """Groups of random completions over a small vocabulary (ids >= 1), 0/1 rewards with both kinds in every
    group; the rows of a group share their prompt and, often, a first few completion tokens (so that a prefix
    tree branches inside the completions)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_groups):
        prompt = torch.randint(1, vocab, (prompt_len,), generator=g).tolist()
        stem = torch.randint(1, vocab, (3,), generator=g).tolist()
        rows = []
        for i in range(size):
            n = int(torch.randint(lens[0], lens[1] + 1, (1,), generator=g))
            keep = int(torch.randint(0, 4, (1,), generator=g))
            c = stem[:keep] + torch.randint(1, vocab, (n,), generator=g).tolist()
            rows.append((prompt, c, float(i % 2 == 0) if i < 2 else float(torch.rand(1, generator=g) < 0.5)))
        out.append(rows)
    return out


def smollm2_groups(n_groups: int = 4, size: int = 8) -> list[list[tuple[list[int], list[int], float]]]:
    """SmolLM2's own generations (docs/real_model/easy_arith_32x8_generations.jsonl: 32 questions x 8
    samples, correctness graded), tokenized with SmolLM2's tokenizer; the first ``n_groups`` questions whose
    samples hold both a correct and a wrong one."""
    from transformers import AutoTokenizer

    from oarl.lab.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    recs = [json.loads(x) for x in (ROOT / "docs/real_model/easy_arith_32x8_generations.jsonl").open()]
    by_q: dict[int, list[dict]] = {}
    for r in recs:
        by_q.setdefault(r["row"], []).append(r)
    out = []
    for q in sorted(by_q):
        rs = by_q[q][:size]
        if len({bool(r["correct"]) for r in rs}) < 2:
            continue
        prompt = tok(rs[0]["question"], add_special_tokens=False)["input_ids"]
        out.append([(prompt, tok(r["completion"], add_special_tokens=False)["input_ids"], float(r["correct"]))
                    for r in rs])  # fmt: skip
        if len(out) == n_groups:
            break
    return out
