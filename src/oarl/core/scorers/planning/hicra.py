"""HICRA (arXiv 2509.03646, "Emergent Hierarchical Reasoning in LLMs through Reinforcement Learning"): the
advantage of the planning tokens, the tokens of "strategic grams" (n-grams that steer the reasoning: "let me
check", "but wait", "alternatively"), is amplified: ``A_t = A + alpha |A|`` on them, ``A`` elsewhere.

The grams are text, the batch is token ids: the scorer needs the policy's ``tokenizer`` (declared), decodes
each reasoning token on its own and marks the tokens that overlap a gram's occurrence in the row's reasoning
text (case-insensitive, on word boundaries). Grams as strings keep the option readable and tokenizer-free at
config time; grams as token-id tuples would miss the same words tokenised differently in context (a leading
space, a capital). The authors' gram list is not released; ``PLANNING_GRAMS`` is oarl's.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.entropy.tokens import advantage_sign
from oarl.core.scorers.registry import ScorerSpec, register_scorer

#: oarl's default strategic grams (planning, checking and backtracking phrases of chain-of-thought text).
PLANNING_GRAMS = (
    "let me",
    "let's",
    "wait",
    "alternatively",
    "instead",
    "first",
    "next",
    "we need to",
    "the key",
    "check",
    "verify",
    "notice that",
    "recall that",
    "so the answer",
    "try another",
    "on second thought",
)


def _check(opts) -> None:
    if not (isinstance(opts.alpha, (int, float)) and 0 <= opts.alpha):
        raise ValueError(f"hicra: alpha must be a number >= 0, got {opts.alpha!r}")
    grams = opts.grams
    if isinstance(grams, str) or not all(isinstance(g, str) and g.strip() for g in grams):
        raise ValueError(f"hicra: grams must be a list of non-empty strings, got {grams!r}")


def planning_mask(tokenizer, input_ids: Tensor, mask: Tensor, grams: tuple[str, ...]) -> Tensor:
    """``[B, L]`` bool: the ``mask`` tokens that overlap an occurrence of one of ``grams`` in their row's
    ``mask`` text (each token decoded alone, the texts joined; case-insensitive; a gram must not start or end
    inside a word)."""
    out = torch.zeros_like(mask, dtype=torch.bool)
    if not grams:
        return out
    pattern = re.compile(
        "|".join(
            rf"(?<!\w){re.escape(g.strip().lower())}(?!\w)" for g in sorted(grams, key=len, reverse=True)
        )
    )
    for b in range(len(input_ids)):
        cols = mask[b].bool().nonzero().flatten().tolist()
        if not cols:
            continue
        pieces = [tokenizer.decode([int(input_ids[b, c])]) for c in cols]
        starts, text = [], ""
        for piece in pieces:
            starts.append(len(text))
            text += piece
        ends = [*starts[1:], len(text)]
        for m in pattern.finditer(text.lower()):
            for c, s, e in zip(cols, starts, ends, strict=True):
                if s < m.end() and e > m.start() and e > s:
                    out[b, c] = True
    return out


@register_scorer(
    ScorerSpec(
        "hicra",
        "planning",
        frozenset({"tokenizer", "group_rewards"}),
        "experimental",
        "none",
        why="not yet studied: no training run with it yet (flag testbed or SmolLM2)",
        label="HICRA",
        check=_check,
        output="weights",
    )  # fmt: skip
)
def hicra_scores(
    model: nn.Module | None,
    layout: Layout,
    tokenizer=None,
    alpha: float = 0.2,
    grams: tuple[str, ...] = PLANNING_GRAMS,
) -> Tensor:
    """HICRA (arXiv 2509.03646): ``A_t = A + alpha * |A|`` on the planning tokens (those of a strategic gram in
    ``grams``, found in the row's reasoning text with ``tokenizer``: :func:`planning_mask`), ``A`` elsewhere; as a
    weight of the sequence advantage, ``w_t = 1 + alpha * sign(A)`` on them and 1 elsewhere (a correct row's
    planning is reinforced more, a wrong row's penalised less). ``sign(A)`` is the reward's against its group's
    mean (``group_rewards``). No model call. ``[B, L]`` float32 weights (``output="weights"``: not gated), 0
    outside ``reasoning_mask``.
    """
    if tokenizer is None:
        raise ValueError("the 'hicra' scorer needs tokenizer= (to find the strategic grams in the text)")
    mask = layout.reasoning_mask.bool()
    sign = advantage_sign(layout, "hicra").float()
    planning = planning_mask(tokenizer, layout.input_ids, mask, tuple(grams))
    w = torch.where(planning, 1.0 + float(alpha) * sign[:, None], torch.ones_like(sign)[:, None])
    return torch.where(mask, w, torch.zeros_like(w)).float()
