"""The one layout builder: prompt (left padded) + completion (right padded) rows with the answer span and the
reasoning before it, as a :class:`oarl.core.layout.Layout`.

The trainer (:func:`oarl.batch.reshape.oar_token_advantages`) builds it from token tensors
(:func:`rollout_layout`); the testbed, the viewer, the demo and the benchmarks build it from text
(:func:`encode_text_pairs`, which tokenizes and then calls :func:`rollout_layout`), so every path scores the
same rows the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from oarl.batch.spans import completion_span_masks
from oarl.core.layout import Layout

#: The four tensors of a layout, by their names in a batch dict.
LAYOUT_KEYS = ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")


def completion_columns(mask: Tensor, prompt_width: int) -> Tensor:
    """A completion-side ``[B, T]`` mask as ``[B, prompt_width + T]`` bool: False over the prompt columns."""
    pad = torch.zeros(mask.shape[0], prompt_width, dtype=torch.bool, device=mask.device)
    return torch.cat([pad, mask.bool()], 1)


def rollout_layout(
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    reasoning: Tensor,
    answer: Tensor,
    completion: Tensor | None = None,
    group_ids: Tensor | None = None,
    rewards: Tensor | None = None,
) -> Layout:
    """Rows ``[prompt | completion]``, ``[B, P + T]``.

    Args:
        prompt_ids, prompt_mask: ``[B, P]``, left padded.
        completion_ids, completion_mask: ``[B, T]``, right padded.
        reasoning, answer: ``[B, T]`` bool, the completion's reasoning and answer-span tokens.
        completion: ``[B, T]`` bool, the row's own generated tokens when not every completion token is
            (the layout's ``completion_mask``; None: reasoning | answer).
        group_ids, rewards: ``[B]`` each, or None.
    """
    P = prompt_ids.shape[1]
    return Layout(
        torch.cat([prompt_ids, completion_ids], 1),
        torch.cat([prompt_mask, completion_mask], 1),
        completion_columns(reasoning, P),
        completion_columns(answer, P),
        group_ids,
        rewards,
        None if completion is None else completion_columns(completion, P),
    )


@dataclass(frozen=True)
class TextPairs:
    """Prompt + completion texts laid out as the trainer lays out its rollouts.

    ``layout``: ``[B, P + T]``; ``prompt_width``: ``P``; ``found``: ``[B]`` bool, the completion has an answer
    span; ``completion_offsets``: ``[B, T, 2]`` character spans of the completion tokens (when asked for).
    """

    layout: Layout
    prompt_width: int
    found: Tensor
    completion_offsets: Tensor | None = None

    def tensors(self) -> dict[str, Tensor]:
        """The layout's four ``[B, L]`` tensors by name (:data:`LAYOUT_KEYS`)."""
        return dict(zip(LAYOUT_KEYS, self.layout.tensors, strict=True))

    @property
    def prompt_mask(self) -> Tensor:
        """``[B, L]`` bool, the attended prompt tokens."""
        attn = self.layout.attention_mask
        P = self.prompt_width
        return torch.cat([attn[:, :P].bool(), torch.zeros_like(attn[:, P:], dtype=torch.bool)], 1)

    @property
    def prompt_lengths(self) -> Tensor:
        """``[B]`` long, the number of attended prompt tokens of each row."""
        return self.layout.attention_mask[:, : self.prompt_width].sum(-1)


def encode_text_pairs(
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    finders: Sequence[str] | None = None,
    offsets: bool = False,
    group_ids: Tensor | None = None,
    rewards: Tensor | None = None,
) -> TextPairs:
    """Tokenize pairs (no special tokens) and lay them out (:func:`rollout_layout`), the answer span and the
    reasoning from :func:`oarl.batch.spans.completion_span_masks` (``finders``: its span finders, default
    all). ``offsets``: also the completion tokens' character spans (a fast tokenizer). ``group_ids``,
    ``rewards``: ``[B]``, carried in the layout."""
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(
            f"need as many prompts as completions (>= 1), got {len(prompts)} and {len(completions)}"
        )
    enc = dict(add_special_tokens=False, padding=True, return_tensors="pt")
    p = tokenizer(list(prompts), padding_side="left", **enc)
    c = tokenizer(list(completions), padding_side="right", return_offsets_mapping=offsets, **enc)
    spans = completion_span_masks(tokenizer, c["input_ids"], c["attention_mask"], finders)
    layout = rollout_layout(
        p["input_ids"],
        p["attention_mask"],
        c["input_ids"],
        c["attention_mask"],
        spans.reasoning,
        spans.answer,
        group_ids=group_ids,
        rewards=rewards,
    )
    return TextPairs(layout, p["input_ids"].shape[1], spans.found, c["offset_mapping"] if offsets else None)
