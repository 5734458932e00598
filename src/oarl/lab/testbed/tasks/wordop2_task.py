"""The two-operation word-problem task as a :class:`~oarl.lab.testbed.tasks.base.TestbedTask`: per-character
roles of any completion (gold or model-written) and the decisions an oracle arm weights (both operation words)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from oarl.batch.spans import find_answer
from oarl.lab.testbed.tasks import wordop, wordop2
from oarl.lab.testbed.tasks.registry import TaskRecipe, TaskSpec, register_task
from oarl.lab.testbed.tasks.wordop_task import HELD_OUT_SEED, wordop_recipe


@dataclass(frozen=True)
class WordOp2Task:
    """Decisions: both operation words; causal: them, both signs and both results."""

    config: wordop2.WordOp2Config = field(default_factory=wordop2.WordOp2Config)
    name: str = "wordop2"

    def identity(self) -> dict[str, Any]:
        return {"task": self.name, **asdict(self.config)}

    def source_files(self) -> list[Path]:
        return [Path(wordop.__file__), Path(wordop2.__file__), Path(__file__)]

    def problems(self, n: int, seed: int) -> list[wordop2.WordOp2Problem]:
        split = "test" if seed >= HELD_OUT_SEED else "train"
        return wordop2.generate_problems(n, replace(self.config, seed=self.config.seed + seed), split)

    def sft_dataset(self, n: int, seed: int):
        from datasets import Dataset

        cfg = replace(self.config, seed=self.config.seed + seed)
        probs = wordop2.generate_problems(n, cfg, "train", for_sft=True)
        return Dataset.from_dict(
            {
                "prompt": [p.prompt for p in probs],
                "completion": [p.completion for p in probs],
                "answer": [p.answer for p in probs],
            }
        )

    def reward(self, prompts: list, completions: list, answer: list, **kwargs: Any) -> list[float]:
        return wordop.wordop_reward(prompts, completions, answer)  # the final "The answer is N", as wordop

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
    steps = wordop2.parse_completion(completion)[:2]
    for step in steps:
        s, e = step["op_span"]
        roles[s:e] = ["causal"] * (e - s)
        eq = step["eq"]
        for j in range(e + 1, eq.start() if eq is not None else step["end"]):  # after the operation's "."
            if not completion[j].isspace():
                roles[j] = "chatter"
        if eq is not None:
            for g in (2, 4):
                roles[eq.start(g) : eq.end(g)] = ["causal"] * (eq.end(g) - eq.start(g))
    hit = find_answer(completion, wordop.ANSWER_FINDERS)
    if hit is not None:
        roles[hit[1] : hit[2]] = ["answer"] * (hit[2] - hit[1])
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
