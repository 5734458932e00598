"""The two-operation word-problem task as a :class:`~oarl.lab.testbed.tasks.base.TestbedTask`: per-character
roles of any completion (gold or model-written) and the decisions an oracle arm weights (both operation words)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from oarl.lab.testbed.tasks import wordop, wordop2
from oarl.lab.testbed.tasks.registry import TaskRecipe, TaskSpec, register_task
from oarl.lab.testbed.tasks.wordop_task import WordOpTask, mark_answer, mark_step, wordop_recipe


@dataclass(frozen=True)
class WordOp2Task(WordOpTask):
    """Decisions: both operation words; causal: them, both signs and both results. Problems, SFT rows and the
    reward (the final ``The answer is N``) are wordop's code over :mod:`~oarl.lab.testbed.tasks.wordop2`'s
    generator."""

    config: wordop2.WordOp2Config = field(default_factory=wordop2.WordOp2Config)
    name: str = "wordop2"
    generate: ClassVar[Callable[..., list]] = staticmethod(wordop2.generate_problems)
    completion_budget: ClassVar[dict[str, int]] = wordop2.COMPLETION_BUDGET

    def source_files(self) -> list[Path]:
        return [Path(wordop.__file__), Path(wordop2.__file__), Path(__file__)]

    def executed(self, prompt: str, completion: str) -> bool | None:
        return wordop2.executed_correctly(prompt, completion)

    def choice_share(self, prompt: str, completion: str) -> float:
        return wordop2.decision_choice_share(prompt, completion)

    def char_roles(self, prompt: str, completion: str) -> list[str]:
        return char_roles(completion)

    def decision_chars(self, prompt: str, completion: str) -> list[bool]:
        marks = [False] * len(completion)
        for step in wordop2.parse_completion(completion)[:2]:
            for i in range(*step["op_span"]):
                marks[i] = True
        return marks


def char_roles(completion: str) -> list[str]:
    """One role per character: ``causal`` (the first two operation words, their signs and results),
    ``chatter`` (text between an operation and its equation, or its step's end when it has none),
    ``answer`` (the value after ``The answer is``), else ``format`` (the restated first result included)."""
    roles = ["format"] * len(completion)
    for step in wordop2.parse_completion(completion)[:2]:
        mark_step(roles, completion, step["op_span"], step["eq"], step["end"])
    mark_answer(roles, completion)
    return roles


def wordop2_recipe() -> TaskRecipe:
    """wordop's recipe (SmolLM2-135M, LoRA warm start and RL settings) on the two-operation task, with room for
    its longer completions (:data:`~oarl.lab.testbed.tasks.wordop2.COMPLETION_BUDGET`)."""
    base = wordop_recipe()
    rl = replace(base.rl, max_completion_length=wordop2.COMPLETION_BUDGET["none"])
    return replace(base, config=wordop2.WordOp2Config(), make=WordOp2Task, rl=rl)


register_task(
    TaskSpec(
        "wordop2",
        "wordop with two operations a problem: two decisions a completion (SmolLM2-135M + a LoRA warm start)",
        wordop2.WordOp2Config,
        WordOp2Task,
        wordop2_recipe,
    )
)
