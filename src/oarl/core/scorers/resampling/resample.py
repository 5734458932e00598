"""VinePPO's Monte-Carlo values (arXiv 2410.01679): regenerate the rest of the completion from each prefix,
``k`` times, and reward the continuations; the credit of a token is the value change it caused. The expensive
reference the cheaper credit families approximate (SPO 2505.23564, Thought Anchors 2506.19143 resample too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import decoder_hidden, eval_mode, head_logits, position_ids_from_mask
from oarl.core.scorers.information.info_gain import cut_points
from oarl.core.scorers.registry import ScorerSpec, register_scorer

#: ``reward_fn(row, sequences) -> rewards``: ``row`` indexes the layout, ``sequences`` are full token lists
#: (the row's attended tokens up to the cut, prompt included, then the sampled continuation).
RewardFn = Callable[[int, list[list[int]]], Sequence[float]]
CREDITS = ("aligned", "abs")


def _check(opts) -> None:
    if opts.credit not in CREDITS:
        raise ValueError(f"resample: credit must be one of {CREDITS}, got {opts.credit!r}")
    for name in ("k", "max_new_tokens", "max_batch_sequences"):
        v = getattr(opts, name)
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"resample: {name} must be an int >= 1, got {v!r}")
    if not (isinstance(opts.temperature, (int, float)) and opts.temperature > 0):
        raise ValueError(f"resample: temperature must be > 0, got {opts.temperature!r}")
    if not all(isinstance(t, int) for t in opts.step_token_ids):
        raise ValueError(f"resample: step_token_ids must be token ids (ints), got {opts.step_token_ids!r}")


def sample_continuations(
    model: nn.Module,
    prefixes: Sequence[Tensor],
    k: int,
    max_new_tokens: int,
    temperature: float,
    eos: int | None,
    generator: torch.Generator | None,
) -> list[list[list[int]]]:
    """``k`` samples of up to ``max_new_tokens`` tokens after each of the ``C`` prefixes (stopping at ``eos``,
    kept), all ``C * k`` sequences in one left-padded batch with a KV cache. Each step draws for every sequence
    at once (``torch.multinomial`` on ``[C * k, V]``, finished ones too), so the draws depend only on the
    generator and the batch. Returns ``[C][k]`` full sequences (prefix + continuation)."""
    dev = prefixes[0].device
    n, width = len(prefixes) * k, max(int(p.shape[0]) for p in prefixes)
    ids = torch.zeros(n, width, dtype=torch.long, device=dev)
    attn = torch.zeros(n, width, dtype=torch.long, device=dev)
    for i, p in enumerate(prefixes):
        ids[i * k : (i + 1) * k, width - p.shape[0] :] = p
        attn[i * k : (i + 1) * k, width - p.shape[0] :] = 1
    hidden, cache = decoder_hidden(model, attn, position_ids_from_mask(attn), input_ids=ids, use_cache=True)
    last, pos = hidden[:, -1], attn.sum(-1, keepdim=True)
    out: list[list[int]] = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    for i in range(max_new_tokens):
        probs = (head_logits(model, last).float() / temperature).softmax(-1)
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        for j in (~done).nonzero().flatten().tolist():
            out[j].append(int(tok[j]))
        if eos is not None:
            done |= tok == eos
        if bool(done.all()) or i == max_new_tokens - 1:
            break
        attn = torch.cat([attn, torch.ones(n, 1, dtype=attn.dtype, device=dev)], 1)
        hidden, cache = decoder_hidden(
            model, attn, pos + i, input_ids=tok[:, None], past_key_values=cache, use_cache=True
        )
        last = hidden[:, -1]
    heads = [p.tolist() for p in prefixes]
    return [[heads[c] + out[c * k + j] for j in range(k)] for c in range(len(prefixes))]


def _eos(model: nn.Module, eos_token_id: int | None) -> int | None:
    if eos_token_id is not None:
        return int(eos_token_id)
    eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    return eos[0] if isinstance(eos, list) and eos else eos


@register_scorer(
    ScorerSpec(
        "resample",
        "resampling",
        frozenset({"model", "randomness", "generation"}),
        "experimental",
        "quadratic",
        check=_check,
        why="the reference, not trained with: per step 19x a GRPO forward + backward per row on the flag task, and at k = 4 it agrees with itself at 0.11 on SmolLM2 (docs/credit_study.md, docs/real_model.md)",
        label="Resample",
    )  # fmt: skip
)
@torch.no_grad()
def resample_scores(
    model: nn.Module,
    layout: Layout,
    generator: torch.Generator | None = None,
    reward_fn: RewardFn | None = None,
    k: int = 4,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    eos_token_id: int | None = None,
    step_token_ids: tuple[int, ...] = (),
    credit: str = "aligned",
    max_batch_sequences: int = 1024,
) -> Tensor:
    """VinePPO's Monte-Carlo credit (arXiv 2410.01679): ``dV_t = V(prefix <= t) - V(prefix < t)``, ``V(prefix)``
    the mean ``reward_fn`` of ``k`` continuations sampled from the policy after the prefix.

    Per step when ``step_token_ids`` is given (as ``info_gain``: every token of a step gets the step's
    ``dV``). VinePPO uses ``dV_t`` as the token's advantage; through OAR's gate ``credit="aligned"`` (default)
    scores ``dV_t * sign(r - V(prompt))``, ``r`` the row's own reward (the branches that moved the value
    toward the row's outcome are boosted, as ``tree``), ``"abs"`` ``|dV_t|``. ``eos_token_id`` (default: the
    model's) ends a continuation (set ``max_new_tokens`` to the completion budget, e.g. the trainer's
    ``max_completion_length``: a continuation cut short is rewarded as it is); ``temperature`` > 0. Cost:
    ``k`` samples of up to ``max_new_tokens`` tokens for each of the ``T + 1`` cuts (per step: one per step),
    the cuts of all rows sampled together, ``max_batch_sequences`` sequences per batch.
    Deterministic for a given ``generator``. Rows without reasoning score 0; the answer span is not read.
    Returns ``[B, L]`` float32, 0 outside ``reasoning_mask``.
    """
    if reward_fn is None:
        raise ValueError(
            "the 'resample' scorer needs reward_fn(row, sequences) -> rewards (needs generation)"
        )
    values = resample_values(
        model,
        layout,
        reward_fn,
        generator,
        k=k,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        eos_token_id=eos_token_id,
        step_token_ids=step_token_ids,
        max_batch_sequences=max_batch_sequences,
    )
    own = own_rewards(layout, reward_fn) if credit == "aligned" else None
    return resample_credit(values, credit, own).float().to(layout.input_ids.device)


@dataclass(frozen=True)
class ResampleValues:
    """What one resampling run measured. ``change``: ``[B, L]`` float64, ``dV_t`` at the reasoning tokens (0
    elsewhere); ``root``: ``[B]`` float64, ``V(prompt)`` (the value before the first reasoning token; NaN for
    rows without reasoning); ``step_end``: ``[B, L]`` long, the column of the cut after each token (the last
    token of its step; per token: the token itself); ``reasoning``: ``[B, L]`` bool, the tokens scored."""

    change: Tensor
    root: Tensor
    step_end: Tensor
    reasoning: Tensor


@torch.no_grad()
def resample_values(
    model: nn.Module,
    layout: Layout,
    reward_fn: RewardFn,
    generator: torch.Generator | None = None,
    k: int = 4,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    eos_token_id: int | None = None,
    step_token_ids: Sequence[int] = (),
    max_batch_sequences: int = 1024,
) -> ResampleValues:
    """The Monte-Carlo values behind :func:`resample_scores` (same options, same draws for a generator):
    ``V`` at every cut, read back as each token's value change and each row's root value."""
    ids, attn, reasoning = layout.input_ids, layout.attention_mask.bool(), layout.reasoning_mask.bool()
    after, before = cut_points(attn, reasoning, tuple(step_token_ids), ids)
    if (before[reasoning] < 0).any():
        raise ValueError("resample: a row's first reasoning token has no token before it (no prompt)")
    eos = _eos(model, eos_token_id)
    rows = reasoning.any(-1).nonzero().flatten().tolist()
    cols = {b: reasoning[b].nonzero().flatten() for b in rows}
    cuts = [
        (b, c) for b in rows for c in torch.cat([after[b, cols[b]], before[b, cols[b]]]).unique().tolist()
    ]
    values: dict[tuple[int, int], float] = {}
    per_batch = max(1, max_batch_sequences // k)
    with eval_mode(model):
        for i in range(0, len(cuts), per_batch):
            chunk = cuts[i : i + per_batch]
            prefixes = [ids[b, : c + 1][attn[b, : c + 1]] for b, c in chunk]
            samples = sample_continuations(model, prefixes, k, max_new_tokens, temperature, eos, generator)
            for (b, c), seqs in zip(chunk, samples, strict=True):
                values[b, c] = sum(float(r) for r in reward_fn(b, seqs)) / k
    change = torch.zeros(ids.shape, dtype=torch.float64)
    root = torch.full((ids.shape[0],), float("nan"), dtype=torch.float64)
    for b in rows:
        t = cols[b].tolist()
        change[b, t] = torch.tensor(
            [values[b, int(after[b, i])] - values[b, int(before[b, i])] for i in t], dtype=torch.float64
        )
        root[b] = values[b, int(before[b, t[0]])]
    return ResampleValues(change, root, after.cpu(), reasoning.cpu())


def own_rewards(layout: Layout, reward_fn: RewardFn) -> Tensor:
    """``[B]`` float64: each row's own reward (``reward_fn`` on its attended tokens), NaN for rows without
    reasoning (not asked)."""
    ids, attn = layout.input_ids, layout.attention_mask.bool()
    out = torch.full((ids.shape[0],), float("nan"), dtype=torch.float64)
    for b in layout.reasoning_mask.bool().any(-1).nonzero().flatten().tolist():
        out[b] = float(reward_fn(b, [ids[b][attn[b]].tolist()])[0])
    return out


def resample_credit(values: ResampleValues, credit: str, own: Tensor | None = None) -> Tensor:
    """``[B, L]`` float64 scores from measured values: ``"abs"`` ``|dV_t|``; ``"aligned"``
    ``dV_t * sign(own - root)`` (``own``: :func:`own_rewards`). 0 outside the reasoning tokens."""
    if credit == "abs":
        dv = values.change.abs()
    elif credit == "aligned":
        if own is None:
            raise ValueError("resample_credit: credit 'aligned' needs the rows' own rewards")
        dv = values.change * ((own > values.root).double() - (own < values.root).double())[:, None]
    else:
        raise ValueError(f"resample: credit must be one of {CREDITS}, got {credit!r}")
    return torch.where(values.reasoning, dv, torch.zeros_like(dv))
