"""The arithmetic task as a :class:`~oarl.lab.testbed.tasks.base.TestbedTask` (as ``flag_task`` is for the flag task)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from oarl.batch.reshape import OARSettings
from oarl.lab.testbed.settings import RLSettings
from oarl.lab.testbed.tasks import arith
from oarl.lab.testbed.tasks.registry import TaskRecipe, TaskSpec, register_task
from oarl.lab.testbed.warmstart import WarmStartConfig


@dataclass(frozen=True)
class ArithTask:
    """:class:`~oarl.lab.testbed.tasks.base.TestbedTask` view of the arithmetic task (causal = dependency-path
    values, which are also what an oracle arm weights; everything else in the reasoning is format)."""

    config: arith.ArithConfig = field(default_factory=arith.ArithConfig)
    name: str = "arith"

    def identity(self) -> dict[str, Any]:
        return {"task": self.name, **asdict(self.config)}

    def source_files(self) -> list[Path]:
        return [Path(arith.__file__)]  # the module that defines the data

    def problems(self, n: int, seed: int) -> list[arith.ArithProblem]:
        return arith.generate_problems(n, replace(self.config, seed=self.config.seed + seed))

    def sft_dataset(self, n: int, seed: int):
        return arith.make_dataset(n, replace(self.config, seed=self.config.seed + seed))

    def reward(self, prompts: list, completions: list, answer: list, **kwargs: Any) -> list[float]:
        return arith.arith_reward(prompts, completions, answer)

    def decision_chars(self, prompt: str, completion: str) -> list[bool]:
        return arith.char_spans_to_token_mask(
            [(i, i + 1) for i in range(len(completion))], arith.oracle_char_spans_for(prompt, completion)
        )

    def char_roles(self, prompt: str, completion: str) -> list[str]:
        cut = completion.find(arith.ANSWER_MARKER)
        roles = ["causal" if d else "format" for d in self.decision_chars(prompt, completion)]
        if cut >= 0:
            roles[cut + len(arith.ANSWER_MARKER) :] = ["answer"] * (
                len(completion) - cut - len(arith.ANSWER_MARKER)
            )
        return roles


def arith_recipe() -> TaskRecipe:
    """Defaults of a run on the arithmetic task (the original demo's)."""
    rl = RLSettings(steps=100, learning_rate=3e-5, eval_every=20, oar=OARSettings(noise_std=0.1))
    return TaskRecipe(arith.ArithConfig(), ArithTask, WarmStartConfig(), rl)


register_task(
    TaskSpec(
        "arith",
        "the original demo task: chained arithmetic with distractor steps (tiny model)",
        arith.ArithConfig,
        ArithTask,
        arith_recipe,
    )
)
