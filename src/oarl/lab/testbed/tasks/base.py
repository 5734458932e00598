"""What the testbed needs from a synthetic task, and per-token labels from per-character ones.

A task makes problems (prompt, gold completion, answer), the SFT and RL datasets, the reward, and labels every
character of any completion (gold or model-written) with its role: ``causal`` (the answer depends on it),
``decision`` (the subset an oracle-credit arm weights), ``distractor``, ``chatter``, ``format``, ``answer``.
The labels feed the oracle arm (through the trainer's ``token_labeler``), oracle-eval and the per-role entropy
curves of a study.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:
    from datasets import Dataset

ROLES = ("causal", "distractor", "chatter", "format", "answer")


class TestbedTask(Protocol):
    """A synthetic task with known causal tokens (see :class:`oarl.lab.testbed.tasks.flag.FlagTask`)."""

    name: str

    def identity(self) -> dict[str, Any]:
        """Everything that defines the task (cache key of its warm start)."""

    def source_files(self) -> list[Path]:
        """Modules whose code defines the data (a change retrains the cached warm start)."""

    def problems(self, n: int, seed: int) -> list[Any]:
        """``n`` problems with ``.prompt``, ``.completion`` (gold) and ``.answer``, deterministic in ``seed``."""

    def sft_dataset(self, n: int, seed: int) -> Dataset:
        """Prompt/completion rows for the warm start."""

    def reward(self, prompts: list, completions: list, answer: list, **kwargs: Any) -> list[float]:
        """TRL reward function (1.0 correct, 0.0 otherwise)."""

    def char_roles(self, prompt: str, completion: str) -> list[str]:
        """One of :data:`ROLES` per character of ``completion``."""

    def decision_chars(self, prompt: str, completion: str) -> list[bool]:
        """Per character of ``completion``: is it a token the oracle-credit arm should weight."""


def rl_dataset(task: TestbedTask, n: int, seed: int) -> Dataset:
    """RL prompts with their gold ``answer`` column (what the reward reads)."""
    from datasets import Dataset

    probs = task.problems(n, seed)
    return Dataset.from_dict({"prompt": [p.prompt for p in probs], "answer": [p.answer for p in probs]})


def decoded_pieces(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each token decoded on its own (special tokens: ``""``), so that ``"".join`` is the completion's text as the
    task's character labels see it. (:func:`oarl.lab.viz.attribution.offset_pieces` instead splits one decode of
    the whole row by the tokenizer's offset map.)"""
    special = set(tokenizer.all_special_ids)
    return ["" if i in special else tokenizer.decode([i]) for i in ids]


def chars_to_tokens(pieces: Sequence[str], char_values: Sequence[Any], reduce=any) -> list[Any]:
    """Per-token value from per-character ones: ``reduce`` over the characters of each piece (``[]`` if empty)."""
    out, pos = [], 0
    for piece in pieces:
        out.append(reduce(char_values[pos : pos + len(piece)]) if piece else reduce([]))
        pos += len(piece)
    return out


def completion_token_mask(
    tokenizer, prompt_ids: Tensor, completion_ids: Tensor, completion_mask: Tensor, char_fn
) -> Tensor:
    """``[B, T]`` bool from ``char_fn(prompt_text, completion_text) -> list[bool]`` (per completion character).

    The trainer's ``token_labeler`` for a task: ``char_fn = task.decision_chars`` gives the oracle arm its mask.
    """
    out = torch.zeros(completion_ids.shape, dtype=torch.bool, device=completion_ids.device)
    pad = tokenizer.pad_token_id
    for b in range(completion_ids.shape[0]):
        p_ids = [i for i in prompt_ids[b].tolist() if i != pad]
        n = int(completion_mask[b].sum())
        c_ids = completion_ids[b, :n].tolist()
        pieces = decoded_pieces(tokenizer, c_ids)
        flags = char_fn(tokenizer.decode(p_ids, skip_special_tokens=True), "".join(pieces))
        out[b, :n] = torch.tensor(chars_to_tokens(pieces, flags), dtype=torch.bool)
    return out


def decision_labeler(task: TestbedTask):
    """``OARGRPOTrainer(token_labeler=...)`` for ``task``: its decision tokens."""

    def labeler(tokenizer, prompt_ids: Tensor, completion_ids: Tensor, completion_mask: Tensor) -> Tensor:
        return completion_token_mask(
            tokenizer, prompt_ids, completion_ids, completion_mask, task.decision_chars
        )

    return labeler


def token_roles(tokenizer, prompt: str, completion_ids: Sequence[int], task: TestbedTask) -> list[str]:
    """Role of each completion token: the first role among :data:`ROLES` that any of its characters has."""
    pieces = decoded_pieces(tokenizer, completion_ids)
    roles = task.char_roles(prompt, "".join(pieces))

    def pick(chars: Sequence[str]) -> str:
        return next((r for r in ROLES if r in chars), "format")

    return chars_to_tokens(pieces, roles, reduce=pick)
