"""The word-problem task as a :class:`~oarl.lab.testbed.tasks.base.TestbedTask`: per-character roles of any
completion (gold or model-written) and the decision an oracle arm weights (the operation word)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from oarl.lab.testbed.lora_warmstart import LoraSFTConfig, lora_warm_start
from oarl.lab.testbed.settings import RLSettings
from oarl.lab.testbed.tasks import wordop
from oarl.lab.testbed.tasks.registry import TaskRecipe, TaskSpec, register_task

#: ``problems(n, seed)`` with ``seed >= HELD_OUT_SEED`` draws from the held-out split (the testbed's held-out
#: sets use seeds 30_000 and 40_000; RL prompts 20_000 + seed, SFT rows 10_000), disjoint by construction.
HELD_OUT_SEED = 30_000


@dataclass(frozen=True)
class WordOpTask:
    """Decisions: the operation word after ``Operation:``; causal: it, the sign and the result it produces."""

    config: wordop.WordOpConfig = field(default_factory=wordop.WordOpConfig)
    name: str = "wordop"
    #: ``generate_problems(n, config, split, for_sft)`` of the task's module (a variant task swaps it)
    generate: ClassVar[Callable[..., list]] = staticmethod(wordop.generate_problems)
    #: New tokens a completion needs per chatter level (the gate's budget; a chatter study's max_completion_length)
    completion_budget: ClassVar[dict[str, int]] = wordop.COMPLETION_BUDGET

    def identity(self) -> dict[str, Any]:
        return {"task": self.name, **asdict(self.config)}

    def source_files(self) -> list[Path]:
        return [Path(wordop.__file__), Path(__file__)]

    def problems(self, n: int, seed: int) -> list[wordop.WordOpProblem]:
        split = "test" if seed >= HELD_OUT_SEED else "train"
        return self.generate(n, replace(self.config, seed=self.config.seed + seed), split)

    def sft_dataset(self, n: int, seed: int):
        from datasets import Dataset

        cfg = replace(self.config, seed=self.config.seed + seed)
        probs = self.generate(n, cfg, "train", for_sft=True)
        return Dataset.from_dict(
            {
                "prompt": [p.prompt for p in probs],
                "completion": [p.completion for p in probs],
                "answer": [p.answer for p in probs],
            }
        )

    def reward(self, prompts: list, completions: list, answer: list, **kwargs: Any) -> list[float]:
        return wordop.wordop_reward(prompts, completions, answer)

    def executed(self, prompt: str, completion: str) -> bool | None:
        """The held-out gate's execution check: None when not formatted, else whether it computes what it chose."""
        return wordop.executed_correctly(prompt, completion)

    def choice_share(self, prompt: str, completion: str) -> float:
        """The held-out gate's choice: the share of the completion's decisions the question's words name."""
        return wordop.decision_choice_share(prompt, completion)

    def char_roles(self, prompt: str, completion: str) -> list[str]:
        return char_roles(completion)

    def decision_chars(self, prompt: str, completion: str) -> list[bool]:
        marks = [False] * len(completion)
        span = wordop.parse_completion(completion)["op_span"]
        if span is not None:
            for i in range(*span):
                marks[i] = True
        return marks


def char_roles(completion: str) -> list[str]:
    """One role per character: ``causal`` (operation word, sign, result), ``chatter`` (text between the
    operation and the equation), ``answer`` (the value after ``The answer is``), else ``format``."""
    roles = ["format"] * len(completion)
    parsed = wordop.parse_completion(completion)
    if parsed["op_span"] is not None:
        mark_step(roles, completion, parsed["op_span"], parsed["eq"], len(completion))
    mark_answer(roles, completion)
    return roles


def mark_step(roles: list[str], completion: str, op_span: tuple[int, int], eq, end: int) -> None:
    """Mark one operation step in ``roles``: the operation word ``causal``; the non-space text after its "."
    up to the equation (else ``end``) ``chatter``; the equation's sign and result ``causal``."""
    s, e = op_span
    roles[s:e] = ["causal"] * (e - s)
    for i in range(e + 1, eq.start() if eq is not None else end):  # after the operation's "."
        if not completion[i].isspace():
            roles[i] = "chatter"
    if eq is not None:
        for g in (2, 4):
            roles[eq.start(g) : eq.end(g)] = ["causal"] * (eq.end(g) - eq.start(g))


def mark_answer(roles: list[str], completion: str) -> None:
    """Mark the value after the final ``The answer is`` ``answer`` in ``roles``."""
    hit = wordop.find_answer(completion, wordop.ANSWER_FINDERS)
    if hit is not None:
        roles[hit[1] : hit[2]] = ["answer"] * (hit[2] - hit[1])


def wordop_recipe() -> TaskRecipe:
    """Defaults of a run on the word-problem task with SmolLM2-135M (the warm start is a LoRA adapter:
    :mod:`oarl.lab.testbed.lora_warmstart`)."""
    # Fresh LoRA r 16 q/v on the merged warm policy, bf16 autocast; lr 5e-4: GRPO 0.67 -> 0.99 held-out sampled
    # accuracy in 30 steps, one seed; 2e-3 collapsed (docs/real_model.md, "GRPO from it")
    rl = RLSettings(
        steps=30,
        prompts_per_step=4,
        num_generations=4,
        learning_rate=5e-4,
        eval_every=5,
        max_completion_length=wordop.COMPLETION_BUDGET["none"],
        eval_samples=4,
        lora_rank=16,
        bf16=True,
    )
    return TaskRecipe(wordop.WordOpConfig(), WordOpTask, LoraSFTConfig(), rl, warm=lora_warm_start)


register_task(
    TaskSpec(
        "wordop",
        "word problems whose words choose add or subtract (SmolLM2-135M + its shipped LoRA warm start)",
        wordop.WordOpConfig,
        WordOpTask,
        wordop_recipe,
    )
)
