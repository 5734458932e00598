"""Token credit of several scorers on prompt + completion pairs: scores, gate inputs, weights and views.

For every method this computes, per token of each completion, the raw scorer output ``score_t``, the gate's
normalised score ``s_t = minmax(sign(score) log1p|score|)`` over the reasoning tokens (steps 1-2 of
:func:`oarl.core.gating.bilevel_weights`) and the final weight ``w_t = bilevel_weights(score)_t``, plus the row's
ESS-ratio and top-10% share of ``sum |A_t|`` (with one sequence advantage per row, the share of ``sum w_t``).
:mod:`oarl.lab.viz.html_report` renders the result; :func:`oarl.lab.viz.plots.attribution_strip` draws it as a PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from oarl.batch.credit import score_and_gate
from oarl.batch.rollout_layout import LAYOUT_KEYS, TextPairs, encode_text_pairs
from oarl.batch.settings import OARSettings
from oarl.batch.spans import describe_finders, token_char_offsets
from oarl.core import gating
from oarl.core.diagnostics import auroc, ess_ratio, oracle_recall, top_mass_share
from oarl.core.layout import Layout
from oarl.lab.testbed.oracle import role_masks
from oarl.lab.testbed.tasks.arith_task import ArithTask

#: What every view (console, HTML, PNG) says for a row without an answer span, instead of its ESS or share.
NO_SPAN_NOTE = "no answer span: nothing scored"


def no_span_help() -> str:
    """The forms the span finders look for, and how to add one (for a row without an answer span)."""
    return (
        f"the completion has none of {describe_finders()}; end it with one, or add a pattern with "
        "oar_span_finders: ['re:PATTERN'] (one group around the answer)"
    )


def row_stats(ess: float, top10: float, found: bool) -> str:
    """``"ESS 0.83 · top10 0.21"`` for a scored row, :data:`NO_SPAN_NOTE` for a row without an answer span."""
    return f"ESS {ess:.2f} · top10 {top10:.2f}" if found else NO_SPAN_NOTE


@dataclass
class TokenView:
    """One token as displayed: its text piece, column in the batch, role and oracle flag."""

    text: str
    column: int
    role: str  # "prompt" | "reasoning" | "answer" | "completion" (after the answer, or no span found)
    oracle: bool = False


@dataclass
class RowView:
    """The tokens of one prompt + completion pair, in order; ``found`` is False without an answer span."""

    title: str
    prompt: list[TokenView]
    completion: list[TokenView]
    found: bool


@dataclass
class MethodResult:
    """One scorer on the batch: ``scores``, ``normalised``, ``weights`` ``[B, L]``; per-row diagnostics ``[B]``."""

    scores: Tensor
    normalised: Tensor
    weights: Tensor
    ess_ratio: Tensor
    top10_share: Tensor
    recall: Tensor | None = None  # recall@k vs the oracle tokens (when known)
    auroc: Tensor | None = None


@dataclass
class Attribution:
    """Everything a report needs: the encoded batch, the token views and one :class:`MethodResult` per method."""

    batch: dict[str, Tensor]
    rows: list[RowView]
    methods: dict[str, MethodResult]
    meta: dict = field(default_factory=dict)

    @property
    def has_oracle(self) -> bool:
        return "oracle_mask" in self.batch


def encode_pairs(
    tokenizer, prompts: Sequence[str], completions: Sequence[str], finders: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """Encode pairs as ``[left-padded prompt | right-padded completion]`` rows, all ``[B, L]``.

    Returns ``input_ids``, ``attention_mask``, ``reasoning_mask``, ``answer_mask``, ``prompt_mask`` and ``found``
    ``[B]`` (an answer span exists): the trainer's layout (:func:`oarl.batch.rollout_layout.encode_text_pairs`).
    """
    return _batch(encode_text_pairs(tokenizer, prompts, completions, finders))


def _batch(pairs: TextPairs) -> dict[str, Tensor]:
    return {**pairs.tensors(), "prompt_mask": pairs.prompt_mask, "found": pairs.found}


def normalised_scores(scores: Tensor, mask: Tensor) -> Tensor:
    """The gate's normalised scores (:func:`oarl.core.gating.normalised_scores`) as float32 for display."""
    return gating.normalised_scores(scores, mask).float()


def score_methods(
    model: nn.Module,
    batch: dict[str, Tensor],
    methods: Sequence[str],
    probe: str = "as_mean",
    tau: float = gating.TAU,
    beta: float = gating.BETA,
    floor: float = gating.FLOOR,
    seed: int = 0,
    **options: object,
) -> dict[str, MethodResult]:
    """Run each registered scorer on ``batch`` and gate it; ``probe`` and ``options`` (named
    :class:`~oarl.batch.settings.OARSettings` fields, e.g. ``mask_token_id``) are shared settings, each given to
    the scorers that take it.

    Every scorer gets a fresh ``torch.Generator`` seeded with ``seed``, so results are reproducible.
    """
    layout = Layout(*(batch[k] for k in LAYOUT_KEYS))
    reasoning = batch["reasoning_mask"].bool()
    out = {}
    for method in methods:
        gen = torch.Generator().manual_seed(seed)
        settings = OARSettings(method=method, probe=probe, tau=tau, beta=beta, floor=floor, **options)
        credit = score_and_gate(model, layout, settings, generator=gen)
        scores, weights = credit.scores.detach().float(), credit.weights
        result = MethodResult(
            scores=scores,
            normalised=normalised_scores(scores, reasoning),
            weights=weights,
            ess_ratio=ess_ratio(weights, reasoning),
            top10_share=top_mass_share(weights, reasoning),
        )
        if "oracle_mask" in batch:
            result.recall = oracle_recall(scores, batch["oracle_mask"], reasoning)
            result.auroc = auroc(scores, batch["oracle_mask"], reasoning)
        out[method] = result
    return out


def offset_pieces(tokenizer, ids: Sequence[int]) -> list[str]:
    """Split the decoded text of ``ids`` into one contiguous piece per token (the pieces join to the text).

    Built on :func:`oarl.batch.spans.token_char_offsets`; characters an offset map leaves out (e.g. a trimmed
    leading space) go to the token before them. (:func:`oarl.lab.testbed.tasks.base.decoded_pieces` instead
    decodes each token on its own and drops special tokens.)
    """
    text, offsets = token_char_offsets(tokenizer, ids)
    pieces, prev = [], 0
    for i, (_, end) in enumerate(offsets):
        end = len(text) if i == len(offsets) - 1 else min(max(prev, end), len(text))
        pieces.append(text[prev:end])
        prev = end
    return pieces


def row_views(tokenizer, batch: dict[str, Tensor], titles: Sequence[str] | None = None) -> list[RowView]:
    """One :class:`RowView` per batch row: prompt and completion tokens with their roles and oracle flags."""
    rows = []
    oracle = batch.get("oracle_mask")
    for b in range(batch["input_ids"].shape[0]):
        attended = batch["attention_mask"][b].bool()
        views = {}
        for part, sel in (
            ("prompt", attended & batch["prompt_mask"][b]),
            ("completion", attended & ~batch["prompt_mask"][b]),
        ):
            cols = sel.nonzero().flatten().tolist()
            pieces = offset_pieces(tokenizer, batch["input_ids"][b, cols].tolist()) if cols else []
            views[part] = [
                TokenView(
                    text=piece,
                    column=col,
                    role=part if part == "prompt" else _role(batch, b, col),
                    oracle=bool(oracle is not None and oracle[b, col]),
                )
                for piece, col in zip(pieces, cols, strict=True)
            ]
        title = titles[b] if titles is not None else f"example {b + 1}"
        rows.append(RowView(title, views["prompt"], views["completion"], bool(batch["found"][b])))
    return rows


def _role(batch: dict[str, Tensor], b: int, col: int) -> str:
    if batch["reasoning_mask"][b, col]:
        return "reasoning"
    return "answer" if batch["answer_mask"][b, col] else "completion"


def attribute(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    methods: Sequence[str] = ("perturbation", "gradient", "entropy", "random"),
    probe: str = "as_mean",
    tau: float = gating.TAU,
    beta: float = gating.BETA,
    floor: float = gating.FLOOR,
    seed: int = 0,
    oracle: bool | object = False,
    titles: Sequence[str] | None = None,
    finders: Sequence[str] | None = None,
    **options: object,
) -> Attribution:
    """Encode the pairs, score them with every method and build the token views.

    With ``oracle`` a testbed task (or ``True``: the arithmetic task) the oracle causal tokens of
    :func:`oarl.lab.testbed.oracle.oracle_batch` are added as ``oracle_mask``, with per-row recall@k and AUROC.
    """
    pairs = encode_text_pairs(tokenizer, prompts, completions, finders, offsets=bool(oracle))
    batch = _batch(pairs)
    if oracle:
        task = ArithTask() if oracle is True else oracle
        batch["oracle_mask"] = role_masks(pairs, prompts, completions, task)["oracle_mask"]
    device = next(model.parameters()).device
    on_device = {k: v.to(device) for k, v in batch.items()}
    results = score_methods(model, on_device, methods, probe, tau, beta, floor, seed, **options)
    for r in results.values():
        for name in ("scores", "normalised", "weights", "ess_ratio", "top10_share", "recall", "auroc"):
            value = getattr(r, name)
            if value is not None:
                setattr(r, name, value.cpu())
    meta = {"probe": probe, "tau": tau, "beta": beta, "floor": floor, "seed": seed}
    return Attribution(batch, row_views(tokenizer, batch, titles), results, meta)
