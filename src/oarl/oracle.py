"""Oracle causal-token recall of token scorers on the embedded arithmetic task (ground truth is known)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from oarl.diagnostics import oracle_recall
from oarl.gating import bilevel_weights
from oarl.scorers import get_scorer
from oarl.spans import completion_span_masks
from oarl.tasks import arith


def oracle_batch(tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, Tensor]:
    """Encode prompt + completion rows (left padded) with reasoning, answer and oracle masks, all ``[B, L]``."""
    p = tokenizer(
        list(prompts), add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt"
    )
    c = tokenizer(
        list(completions),
        add_special_tokens=False,
        padding=True,
        padding_side="right",
        return_tensors="pt",
        return_offsets_mapping=True,
    )
    spans = completion_span_masks(tokenizer, c["input_ids"], c["attention_mask"])
    oracle = torch.zeros_like(spans.reasoning)
    for b, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        mask = arith.char_spans_to_token_mask(
            c["offset_mapping"][b].tolist(), arith.oracle_char_spans_for(prompt, completion)
        )
        oracle[b] = torch.tensor(mask) & spans.reasoning[b]
    pad = torch.zeros_like(p["input_ids"], dtype=torch.bool)
    return {
        "input_ids": torch.cat([p["input_ids"], c["input_ids"]], 1),
        "attention_mask": torch.cat([p["attention_mask"], c["attention_mask"]], 1),
        "reasoning_mask": torch.cat([pad, spans.reasoning], 1),
        "answer_mask": torch.cat([pad, spans.answer], 1),
        "oracle_mask": torch.cat([pad, oracle], 1),
    }


def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and the half-width of its normal 95% interval, ignoring NaN."""
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return float("nan"), float("nan"), 0
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / max(len(v) - 1, 1))
    return m, 1.96 * sd / math.sqrt(len(v)), len(v)


def scorer_recall(
    model: nn.Module,
    batch: dict[str, Tensor],
    methods: Sequence[str],
    probe: str = "as_mean",
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, dict]:
    """Recall@k of each scorer against the oracle tokens (candidates: reasoning tokens), mean with 95% CI."""
    out = {}
    n = batch["input_ids"].shape[0]
    for method in methods:
        scorer = get_scorer(method)
        gen = torch.Generator().manual_seed(seed)
        recalls: list[float] = []
        for i in range(0, n, batch_size):
            rows = {k: v[i : i + batch_size] for k, v in batch.items()}
            keep = rows["reasoning_mask"].any(-1) & rows["answer_mask"].any(-1) & rows["oracle_mask"].any(-1)
            if not keep.any():
                continue
            rows = {k: v[keep] for k, v in rows.items()}
            args = [rows[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]
            scores = scorer(model, *args, probe=probe, generator=gen)
            recalls += oracle_recall(scores, rows["oracle_mask"], rows["reasoning_mask"]).tolist()
        mean, ci, count = mean_ci(recalls)
        out[method] = {"recall": mean, "ci95": ci, "n": count}
    return out


def token_weights(
    model: nn.Module, batch: dict[str, Tensor], method: str, probe: str = "as_mean", **gate
) -> Tensor:
    """Gated weights ``[B, L]`` of one scorer on an oracle batch (for attribution views)."""
    args = [batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]
    scores = get_scorer(method)(model, *args, probe=probe, generator=torch.Generator().manual_seed(0))
    return bilevel_weights(scores, batch["reasoning_mask"], **gate)
