"""One batch of rollouts, as a trainer hands it to the OAR step: :class:`Rollout`.

The shapes are checked once, at construction, so a mismatch fails where the batch is built, naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

#: ``reward_fn(row, sequences) -> rewards``: ``row`` in ``[0, B)``, ``sequences`` full token lists (the row's
#: attended prompt tokens, then a completion). Read by scorers that need ``generation`` (e.g. ``resample``).
RewardFn = Callable[[int, list[list[int]]], Sequence[float]]
#: ``labeler(tokenizer, prompt_ids [B, P], completion_ids [B, T], completion_mask [B, T]) -> [B, T] bool``: the
#: known decisive completion tokens (testbed tasks have them; real data does not).
TokenLabeler = Callable[[Any, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Rollout:
    """``B`` sampled completions with their prompts and group-normalised advantages.

    Attributes:
        prompt_ids, prompt_mask: ``[B, P]``, left padded (as TRL gives them).
        completion_ids, completion_mask: ``[B, T]``, right padded.
        advantages: ``[B]``, group-normalised sequence advantages ``A``.
        rewards: ``[B]`` scalar rewards (NaN: unscorable), or None; read by scorers that need ``group_rewards``
            and carried in the layout for every scorer when given.
        group_ids: ``[B]`` the prompt group of each row, or None: then ``num_generations`` consecutive rows per
            prompt (as TRL's and verl's samplers lay them out) when that is given (:attr:`groups`).
        num_generations: completions per prompt, or None; give it or ``group_ids``, not both.
        loss_mask: ``[B, T]``, the completion tokens the loss trains on when not all of them (TRL's ``tool_mask``:
            0 on tool / environment output), or None. Those tokens stay in the context a scorer reads, but are
            never scored nor an answer span, and the weights sum to the count of trained tokens.
        oracle_labels: ``[B, T]`` bool, known decisive completion tokens, or None (only the ``oracle`` scorer
            reads them; ``OARStep`` fills them from its ``token_labeler`` when they are missing).
        reward_fn: the rewarder of this batch's prompts (:data:`RewardFn`), or None; it lives here because it
            closes over the batch (its prompts, answers), and only scorers that need ``generation`` call it.
    """

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor
    advantages: Tensor
    rewards: Tensor | None = None
    group_ids: Tensor | None = None
    num_generations: int | None = None
    loss_mask: Tensor | None = None
    oracle_labels: Tensor | None = None
    reward_fn: RewardFn | None = None

    def __post_init__(self) -> None:
        def shape(name: str) -> tuple[int, ...]:
            return tuple(getattr(self, name).shape)

        if len(shape("prompt_ids")) != 2 or len(shape("completion_ids")) != 2:
            raise ValueError(
                f"Rollout: prompt_ids and completion_ids must be [B, P] and [B, T], got {shape('prompt_ids')} "
                f"and {shape('completion_ids')}"
            )
        (B, P), T = shape("prompt_ids"), shape("completion_ids")[1]
        want = {
            "prompt_mask": (B, P),
            "completion_ids": (B, T),
            "completion_mask": (B, T),
            "advantages": (B,),
            "rewards": (B,),
            "group_ids": (B,),
            "loss_mask": (B, T),
            "oracle_labels": (B, T),
        }
        for name, expected in want.items():
            if getattr(self, name) is not None and shape(name) != expected:
                raise ValueError(
                    f"Rollout.{name} has shape {shape(name)}, expected {expected} (B={B} rows, P={P} prompt and "
                    f"T={T} completion columns)"
                )
        if self.num_generations is not None:
            if self.group_ids is not None:
                raise ValueError("Rollout: give group_ids or num_generations, not both")
            if not (isinstance(self.num_generations, int) and self.num_generations >= 1):
                raise ValueError(f"Rollout.num_generations must be >= 1, got {self.num_generations!r}")
            if B % self.num_generations:
                raise ValueError(f"{B} rows do not split into groups of {self.num_generations}")

    @property
    def groups(self) -> Tensor | None:
        """``[B]`` group ids: ``group_ids``, else ``arange(B) // num_generations``, else None."""
        if self.group_ids is not None or self.num_generations is None:
            return self.group_ids
        device = self.advantages.device
        return torch.arange(len(self.advantages), device=device) // self.num_generations

    @property
    def trained(self) -> Tensor:
        """``[B, T]`` bool, the completion tokens the loss trains on (``completion_mask`` and ``loss_mask``)."""
        mask = self.completion_mask.bool()
        return mask if self.loss_mask is None else mask & self.loss_mask.to(mask.device).bool()
