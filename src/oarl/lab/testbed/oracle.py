"""Scorers against the oracle causal tokens of a testbed task (ground truth is known).

Per row, over its reasoning tokens: recall@k (``k`` = number of oracle tokens), precision@k (``k`` = the top
``precision_frac`` of the reasoning tokens) and AUROC; averaged over rows with a normal 95% interval. The
mask-token ablation re-runs OAR-P with other replacement tokens (:func:`replacement_scores`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from oarl.batch.credit import gate_scores
from oarl.batch.rollout_layout import LAYOUT_KEYS, TextPairs, completion_columns, encode_text_pairs
from oarl.core.diagnostics import auroc, oracle_recall, precision_at_k
from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer, perturbation_scores, shared_options
from oarl.lab.testbed.tasks import arith
from oarl.lab.testbed.tasks.arith_task import ArithTask
from oarl.lab.testbed.tasks.base import TestbedTask


def text_batch(
    tokenizer, prompts: Sequence[str], completions: Sequence[str], offsets: bool = False
) -> dict[str, Tensor]:
    """The four layout tensors of :func:`oarl.batch.rollout_layout.encode_text_pairs` by name, all ``[B, P + T]``; with
    ``offsets``, also ``completion_offsets`` (``[B, T, 2]`` character spans of the completion tokens)."""
    pairs = encode_text_pairs(tokenizer, prompts, completions, offsets=offsets)
    out = pairs.tensors()
    if offsets:
        out["completion_offsets"] = pairs.completion_offsets
    return out


def role_masks(
    pairs: TextPairs, prompts: Sequence[str], completions: Sequence[str], task: TestbedTask
) -> dict[str, Tensor]:
    """``oracle_mask`` (the task's causal-role tokens) and ``chatter_mask``, ``[B, L]``, of encoded pairs (with
    ``completion_offsets``), each inside the reasoning tokens."""
    offsets = pairs.completion_offsets
    if offsets is None:
        raise ValueError("role_masks needs the completion offsets: encode_text_pairs(..., offsets=True)")
    P = pairs.prompt_width
    reasoning = pairs.layout.reasoning_mask[:, P:]
    oracle = torch.zeros_like(reasoning)
    chatter = torch.zeros_like(reasoning)
    for b, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        roles = task.char_roles(prompt, completion)
        row_offsets = offsets[b].tolist()
        for role, out in (("causal", oracle), ("chatter", chatter)):
            spans_of_role = [(i, i + 1) for i, r in enumerate(roles) if r == role]
            out[b] = torch.tensor(arith.char_spans_to_token_mask(row_offsets, spans_of_role)) & reasoning[b]
    return {"oracle_mask": completion_columns(oracle, P), "chatter_mask": completion_columns(chatter, P)}


def oracle_batch(
    tokenizer, prompts: Sequence[str], completions: Sequence[str], task: TestbedTask | None = None
) -> dict[str, Tensor]:
    """:func:`text_batch` plus the oracle (causal-role tokens) and chatter masks (:func:`role_masks`), all
    ``[B, L]``. ``task`` defaults to the arithmetic task."""
    pairs = encode_text_pairs(tokenizer, prompts, completions, offsets=True)
    return {**pairs.tensors(), **role_masks(pairs, prompts, completions, task or ArithTask())}


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
    **options: object,
) -> dict[str, dict]:
    """Recall@k of each scorer against the oracle tokens (candidates: reasoning tokens), mean with 95% CI.

    The recall part of :func:`scorer_metrics`; ``options`` go to the scorers (e.g. ``noise_std``).
    """
    metrics = scorer_metrics(model, batch, methods, probe, seed, batch_size, **options)
    return {
        m: {"recall": r["recall"]["mean"], "ci95": r["recall"]["ci95"], "n": r["recall"]["n"]}
        for m, r in metrics.items()
    }


def replacement_scores(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    reasoning_mask: Tensor,
    answer_mask: Tensor,
    replacement_ids: Sequence[int],
    probe: str = "as_mean",
    **options: object,
) -> Tensor:
    """OAR-P with in-distribution replacements: ``score_t = mean_{r != x_t} KL(p_clean || p_{x_t <- r})``.

    The mean runs over ``replacement_ids`` (e.g. the ten digits) other than the token's own id, i.e. the
    expected OAR-P score when token t is replaced by a uniformly drawn *different* token of the set. A token
    whose only candidate is itself scores 0. Cost: one OAR-P pass per replacement id. ``[B, L]`` float32.
    """
    ids = sorted({int(r) for r in replacement_ids})
    if not ids:
        raise ValueError("replacement_ids is empty")
    total = torch.zeros(input_ids.shape, dtype=torch.float64, device=input_ids.device)
    count = torch.zeros_like(total)
    options.pop("mask_token_id", None)
    for r in ids:
        s = perturbation_scores(
            model,
            Layout(input_ids, attention_mask, reasoning_mask, answer_mask),
            probe=probe,
            mask_token_id=r,
            **options,
        )
        other = (input_ids != r).double()
        total += s.double() * other
        count += other
    return (total / count.clamp(min=1)).float() * reasoning_mask.float()


def row_metrics(
    scores: Tensor, batch: Mapping[str, Tensor], precision_frac: float = 0.1
) -> dict[str, Tensor]:
    """Per-row ``recall`` (@k = #oracle), ``precision`` (@k = ceil(frac * #reasoning)) and ``auroc``, ``[B]``.

    Candidates are the reasoning tokens; ``chance`` is the oracle share of them (what a random scorer gets
    in expectation for recall and precision; its AUROC is 0.5).
    """
    if not 0.0 < precision_frac <= 1.0:
        raise ValueError(f"precision_frac must be in (0, 1], got {precision_frac}")
    oracle, cand = batch["oracle_mask"].bool(), batch["reasoning_mask"].bool()
    n = cand.sum(-1)
    k = torch.clamp((n.double() * precision_frac).ceil().long(), min=1)
    chance = (oracle & cand).sum(-1).double() / n.clamp(min=1).double()
    out = {
        "recall": oracle_recall(scores, oracle, cand),
        "precision": precision_at_k(scores, oracle, k, cand),
        "auroc": auroc(scores, oracle, cand),
        "chance": torch.where(n > 0, chance, torch.full_like(chance, math.nan)).float(),
    }
    if "chatter_mask" in batch:  # share of the gated weight that lands on chatter (uniform: its token share)
        w, _ = gate_scores(scores, cand)
        chat = batch["chatter_mask"].bool() & cand
        share = (w * chat).sum(-1) / (w * cand).sum(-1).clamp(min=1e-12)
        out["chatter_weight_share"] = torch.where(
            chat.any(-1), share, torch.full_like(share, math.nan)
        ).float()
        token_share = chat.sum(-1).double() / n.clamp(min=1).double()
        out["chatter_token_share"] = torch.where(
            chat.any(-1), token_share, torch.full_like(token_share, math.nan)
        ).float()
    return out


def scorable_rows(batch: Mapping[str, Tensor]) -> Tensor:
    """``[B]`` bool: rows with reasoning tokens, an answer span and at least one oracle token."""
    return batch["reasoning_mask"].any(-1) & batch["answer_mask"].any(-1) & batch["oracle_mask"].any(-1)


def evaluate_scorer(
    score_fn: Callable[..., Tensor],
    batch: Mapping[str, Tensor],
    batch_size: int = 32,
    precision_frac: float = 0.1,
) -> dict[str, dict[str, float]]:
    """``{metric: {mean, ci95, n}}`` of one scorer over the scorable rows of an oracle batch.

    ``score_fn(input_ids, attention_mask, reasoning_mask, answer_mask) -> [b, L]`` is called on chunks of
    ``batch_size`` rows; metrics are from :func:`row_metrics`, means with normal 95% intervals.
    """
    keep = scorable_rows(batch)
    rows = {k: v[keep] for k, v in batch.items()}
    per_row: dict[str, list[float]] = {}
    for i in range(0, int(keep.sum()), batch_size):
        chunk = {k: v[i : i + batch_size] for k, v in rows.items()}
        scores = score_fn(*(chunk[k] for k in LAYOUT_KEYS))
        for name, values in row_metrics(scores, chunk, precision_frac).items():
            per_row.setdefault(name, []).extend(values.tolist())
    out = {}
    for name in ("recall", "precision", "auroc", "chance", "chatter_weight_share", "chatter_token_share"):
        if name.startswith("chatter") and name not in per_row:
            continue
        mean, ci, count = mean_ci(per_row.get(name, []))
        out[name] = {"mean": mean, "ci95": ci, "n": count}
    return out


def scorer_metrics(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    methods: Sequence[str],
    probe: str = "as_mean",
    seed: int = 0,
    batch_size: int = 32,
    precision_frac: float = 0.1,
    **options: object,
) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`evaluate_scorer` for each registered scorer name; ``probe`` and ``options`` are shared settings,
    each given to the scorers that take it (:func:`oarl.core.scorers.shared_options`)."""
    out = {}
    for method in methods:
        scorer = get_scorer(method)
        gen = torch.Generator().manual_seed(seed)

        opts = shared_options(method, probe=probe, **options)

        def score_fn(*args: Tensor, scorer=scorer, gen=gen, opts=opts) -> Tensor:
            return scorer(model, *args, generator=gen, **opts)

        out[method] = evaluate_scorer(score_fn, batch, batch_size, precision_frac)
    return out


def mask_ablation(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    masks: Mapping[str, Sequence[int]],
    probe: str = "as_mean",
    batch_size: int = 32,
    precision_frac: float = 0.1,
) -> dict[str, dict[str, dict[str, float]]]:
    """OAR-P metrics per replacement: ``masks`` maps a label to token ids (one id = that mask token; several =
    :func:`replacement_scores`' mean over the different ones)."""
    out = {}
    for label, ids in masks.items():
        ids = [int(i) for i in ids]

        def score_fn(*args: Tensor, ids=ids) -> Tensor:
            if len(ids) == 1:
                return perturbation_scores(model, Layout(*args), probe=probe, mask_token_id=ids[0])
            return replacement_scores(model, *args, replacement_ids=ids, probe=probe)

        out[label] = evaluate_scorer(score_fn, batch, batch_size, precision_frac)
    return out
