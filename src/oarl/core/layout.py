"""The batch every scorer reads: one :class:`Layout` instead of four loose ``[B, L]`` tensors.

One row is prompt + reasoning + answer span, padded left or right (``attention_mask`` says where). Scorers score
the ``reasoning_mask`` tokens; the outcome probe reads the positions predicting the ``answer_mask`` tokens
(:func:`oarl.core.probes.probe_index`). Group ids and rewards are carried where the caller has them (for credit
families that compare a row with its group), and so is ``completion_mask``, the generated tokens of each row:
a group scorer reads a row's content from it, since the rows a trainer does not score keep their reward in the
group but carry empty reasoning and answer masks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

from torch import Tensor

from oarl.core.model import check_layout, position_ids_from_mask
from oarl.core.probes import probe_index


@dataclass(frozen=True)
class Layout:
    """``input_ids``, ``attention_mask``, ``reasoning_mask``, ``answer_mask``: ``[B, L]`` (checked to line up:
    reasoning and answer disjoint, both inside the attended tokens). ``group_ids``, ``rewards``: ``[B]`` or None.
    ``completion_mask``: ``[B, L]`` or None, the row's generated tokens (reasoning, answer and what follows;
    None: read as ``reasoning_mask | answer_mask``)."""

    input_ids: Tensor
    attention_mask: Tensor
    reasoning_mask: Tensor
    answer_mask: Tensor
    group_ids: Tensor | None = None
    rewards: Tensor | None = None
    completion_mask: Tensor | None = None

    def __post_init__(self) -> None:
        check_layout(self.input_ids, self.attention_mask, self.reasoning_mask, self.answer_mask)
        for name in ("group_ids", "rewards"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (self.input_ids.shape[0],):
                raise ValueError(f"{name} has shape {tuple(t.shape)}, expected ({self.input_ids.shape[0]},)")
        c = self.completion_mask
        if c is not None:
            if c.shape != self.input_ids.shape:
                raise ValueError(
                    f"completion_mask has shape {tuple(c.shape)}, expected {tuple(self.input_ids.shape)}"
                )
            if (c.bool() & ~self.attention_mask.bool()).any():
                raise ValueError("completion_mask marks padded positions (attention_mask == 0)")

    @property
    def generated(self) -> Tensor:
        """``[B, L]`` bool, each row's generated tokens: ``completion_mask``, else ``reasoning_mask | answer_mask``."""
        if self.completion_mask is not None:
            return self.completion_mask.bool()
        return self.reasoning_mask.bool() | self.answer_mask.bool()

    @property
    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(input_ids, attention_mask, reasoning_mask, answer_mask)``."""
        return self.input_ids, self.attention_mask, self.reasoning_mask, self.answer_mask

    @cached_property
    def position_ids(self) -> Tensor:
        """``[B, L]`` positions counting only attended tokens (left and right padding give equal results)."""
        return position_ids_from_mask(self.attention_mask)

    def probe_positions(self, probe: str) -> tuple[Tensor, Tensor]:
        """``positions[B, K]``, ``valid[B, K]``: where ``probe`` reads the logits (:func:`probe_index`)."""
        return probe_index(self.answer_mask, probe)

    def rows(self, index: Tensor) -> Layout:
        """The layout of the rows ``index`` (a ``[n]`` long tensor)."""
        pick = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Layout(**{k: None if v is None else v[index] for k, v in pick.items()})

    def replace(self, **changes: Tensor | None) -> Layout:
        """A copy with some fields replaced (e.g. another ``reasoning_mask``), checked again."""
        return dataclasses.replace(self, **changes)
