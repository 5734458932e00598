"""The flag task as a :class:`~oarl.lab.testbed.tasks.base.TestbedTask`, and the recipe the study starts from
(task knobs, warm start and RL settings measured to make plain GRPO learn; see docs/study.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from oarl.batch.reshape import OARSettings
from oarl.lab.testbed.settings import RLSettings
from oarl.lab.testbed.tasks import flag, flag_labels
from oarl.lab.testbed.tasks.registry import TaskRecipe, TaskSpec, register_task
from oarl.lab.testbed.warmstart import WarmStartConfig


@dataclass(frozen=True)
class FlagTask:
    """Decisions are the on-path flag-decided operators (what the oracle arm weights); roles per character
    come from :func:`oarl.lab.testbed.tasks.flag_labels.char_labels`."""

    config: flag.FlagConfig = field(default_factory=flag.FlagConfig)
    name: str = "flag"

    def identity(self) -> dict[str, Any]:
        return {"task": self.name, **asdict(self.config)}

    def source_files(self) -> list[Path]:
        return [Path(flag.__file__), Path(flag_labels.__file__)]

    def problems(self, n: int, seed: int) -> list[flag.FlagProblem]:
        return flag.generate_problems(n, replace(self.config, seed=self.config.seed + seed))

    def sft_dataset(self, n: int, seed: int):
        return flag.make_dataset(n, replace(self.config, seed=self.config.seed + seed), for_sft=True)

    def reward(self, prompts: list, completions: list, answer: list, **kwargs: Any) -> list[float]:
        return flag.flag_reward(prompts, completions, answer)

    def char_roles(self, prompt: str, completion: str) -> list[str]:
        return flag_labels.char_labels(prompt, completion)

    def decision_chars(self, prompt: str, completion: str) -> list[bool]:
        marks = [False] * len(completion)
        for i in flag_labels.decision_char_positions(prompt, completion):
            marks[i] = True
        return marks


def flag_recipe() -> TaskRecipe:
    """Defaults of ``oarl study`` / ``oarl demo`` on the flag task."""
    # Measured (docs/study.md): the warm policy executes reliably and follows the flag ~65% of the time,
    # so RL has one thing to learn; the flagged distractor is a decision as uncertain as the causal one whose
    # value the answer never reads (entropy credit cannot tell them apart; outcome credit can).
    config = flag.FlagConfig(
        decisions=1,
        flagged_distractors=1,
        num_constants=2,
        fidelity=0.65,
        modulus=None,
        value_max=18,
        chatter_style="mixed",
    )
    ws = WarmStartConfig(train_problems=16000, epochs=1.0, max_steps=1500)
    rl = RLSettings(
        steps=60, learning_rate=1e-4, eval_every=10, oar=OARSettings(noise_std=0.1), max_completion_length=96
    )
    return TaskRecipe(config, FlagTask, ws, rl)


register_task(
    TaskSpec(
        "flag",
        "the study's task: a flag in the question picks an operator, with chatter (tiny model)",
        flag.FlagConfig,
        FlagTask,
        flag_recipe,
    )
)
