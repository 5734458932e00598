"""VinePPO's Monte-Carlo values (arXiv 2410.01679): regenerate the rest of the completion from each prefix,
``k`` times, and reward the continuations; the credit of a token is the value change it caused. The expensive
reference the cheaper credit families approximate (SPO 2505.23564, Thought Anchors 2506.19143 resample too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import decoder_hidden, eval_mode, head_logits, prefix_cache
from oarl.core.scorers.information.info_gain import cut_points
from oarl.core.scorers.registry import ScorerSpec, register_scorer

#: ``reward_fn(row, sequences) -> rewards``: ``row`` indexes the layout, ``sequences`` are full token lists
#: (the row's attended tokens up to the cut, prompt included, then the sampled continuation).
RewardFn = Callable[[int, list[list[int]]], Sequence[float]]
CREDITS = ("aligned", "abs")


def _check(opts) -> None:
    if opts.credit not in CREDITS:
        raise ValueError(f"resample: credit must be one of {CREDITS}, got {opts.credit!r}")
    for name in ("k", "max_new_tokens"):
        v = getattr(opts, name)
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"resample: {name} must be an int >= 1, got {v!r}")
    if not (isinstance(opts.temperature, (int, float)) and opts.temperature > 0):
        raise ValueError(f"resample: temperature must be > 0, got {opts.temperature!r}")
    if not all(isinstance(t, int) for t in opts.step_token_ids):
        raise ValueError(f"resample: step_token_ids must be token ids (ints), got {opts.step_token_ids!r}")


def sample_continuations(
    model: nn.Module,
    prefix: Tensor,
    k: int,
    max_new_tokens: int,
    temperature: float,
    eos: int | None,
    generator: torch.Generator | None,
) -> list[list[int]]:
    """``k`` samples of up to ``max_new_tokens`` tokens after ``prefix[P]`` (stopping at ``eos``, kept), with
    a KV cache. Each step draws for all ``k`` at once (``torch.multinomial`` on ``[k, V]``, finished ones too),
    so the draws depend only on the generator. Returns the ``k`` full sequences (prefix + continuation)."""
    P = prefix.shape[0]
    dev = prefix.device
    hidden, cache = decoder_hidden(
        model, torch.ones(1, P, dtype=torch.long, device=dev), torch.arange(P, device=dev)[None],
        input_ids=prefix[None], use_cache=True,
    )  # fmt: skip
    cache = prefix_cache(cache, 0, P, k, model.config)
    last = hidden[:, -1].expand(k, -1)
    out: list[list[int]] = [[] for _ in range(k)]
    done = torch.zeros(k, dtype=torch.bool, device=dev)
    for i in range(max_new_tokens):
        probs = (head_logits(model, last).float() / temperature).softmax(-1)
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        for j in (~done).nonzero().flatten().tolist():
            out[j].append(int(tok[j]))
        if eos is not None:
            done |= tok == eos
        if bool(done.all()) or i == max_new_tokens - 1:
            break
        attn = torch.ones(k, P + i + 1, dtype=torch.long, device=dev)
        pos = torch.full((k, 1), P + i, device=dev)
        hidden, cache = decoder_hidden(
            model, attn, pos, input_ids=tok[:, None], past_key_values=cache, use_cache=True
        )
        last = hidden[:, -1]
    head = prefix.tolist()
    return [head + o for o in out]


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
        why="not yet trained with; 1-4 s a row on the flag warm starts (k = 4), where it weights the decision 1.98x / 1.88x (heavy / some chatter; 24 rows; docs/study.md)",
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
) -> Tensor:
    """VinePPO's Monte-Carlo credit (arXiv 2410.01679): ``dV_t = V(prefix <= t) - V(prefix < t)``, ``V(prefix)``
    the mean ``reward_fn`` of ``k`` continuations sampled from the policy after the prefix.

    Per step when ``step_token_ids`` is given (as ``info_gain``: every token of a step gets the step's
    ``dV``). VinePPO uses ``dV_t`` as the token's advantage; through OAR's gate ``credit="aligned"`` (default)
    scores ``dV_t * sign(r - V(prompt))``, ``r`` the row's own reward (the branches that moved the value
    toward the row's outcome are boosted, as ``tree``), ``"abs"`` ``|dV_t|``. ``eos_token_id`` (default: the
    model's) ends a continuation (set ``max_new_tokens`` to the completion budget, e.g. the trainer's
    ``max_completion_length``: a continuation cut short is rewarded as it is); ``temperature`` > 0. Cost:
    ``k`` samples of up to ``max_new_tokens`` tokens for each of the ``T + 1`` cuts, one row at a time.
    Deterministic for a given ``generator``. Rows without reasoning score 0; the answer span is not read.
    Returns ``[B, L]`` float32, 0 outside ``reasoning_mask``.
    """
    if reward_fn is None:
        raise ValueError(
            "the 'resample' scorer needs reward_fn(row, sequences) -> rewards (needs generation)"
        )
    ids, attn, reasoning = layout.input_ids, layout.attention_mask.bool(), layout.reasoning_mask.bool()
    scores = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    after, before = cut_points(attn, reasoning, tuple(step_token_ids), ids)
    if (before[reasoning] < 0).any():
        raise ValueError("resample: a row's first reasoning token has no token before it (no prompt)")
    eos = _eos(model, eos_token_id)
    with eval_mode(model):
        for b in reasoning.any(-1).nonzero().flatten().tolist():
            cols = reasoning[b].nonzero().flatten()
            cuts = torch.cat([after[b, cols], before[b, cols]]).unique().tolist()
            values = {}
            for c in cuts:
                prefix = ids[b, : c + 1][attn[b, : c + 1]]
                seqs = sample_continuations(model, prefix, k, max_new_tokens, temperature, eos, generator)
                values[c] = sum(float(r) for r in reward_fn(b, seqs)) / k
            dv = torch.tensor(
                [values[int(after[b, t])] - values[int(before[b, t])] for t in cols.tolist()],
                dtype=torch.float64,
            )
            if credit == "aligned":
                own = float(reward_fn(b, [ids[b][attn[b]].tolist()])[0])
                root = values[int(before[b, cols[0]])]
                dv = dv * ((own > root) - (own < root))
            else:
                dv = dv.abs()
            scores[b, cols] = dv.float().to(scores.device)
    return scores
