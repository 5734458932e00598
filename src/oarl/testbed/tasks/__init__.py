"""Embedded synthetic tasks (offline, CPU-friendly) with known causal structure, and their recipes: the task
config, warm start and RL settings a study of that task starts from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from oarl.testbed.tasks.arith import (
    ANSWER_MARKER,
    ArithConfig,
    ArithProblem,
    arith_reward,
    build_tiny_model,
    build_tokenizer,
    char_spans_to_token_mask,
    dependency_path,
    extract_answer,
    generate_problems,
    make_dataset,
    oracle_char_spans_for,
)
from oarl.testbed.tasks.arith_task import ArithTask


@dataclass(frozen=True)
class TaskRecipe:
    """Defaults of a study on one task: its config, how to build the task from it, warm start and RL.

    ``warm(task, warm_start, cache_dir, threads) -> path`` gives the checkpoint RL starts from (shipped, cached
    or trained now); default :func:`oarl.testbed.warmstart.warm_start` (the tiny model's SFT)."""

    config: Any
    make: Callable[[Any], Any]
    warm_start: Any
    rl: Any
    warm: Callable[..., Any] | None = None

    def checkpoint(self, task: Any, warm_start: Any, cache_dir: str, threads: int | None = 1) -> str:
        """The warm start's path for ``task`` (a variant of this recipe's) with settings ``warm_start``."""
        if self.warm is not None:
            return str(self.warm(task, warm_start, cache_dir, threads=threads))
        from oarl.testbed.warmstart import warm_start as sft_warm_start

        return str(sft_warm_start(task, warm_start, cache_dir, threads=threads))

    def with_sft_steps(self, steps: int) -> Any:
        """The warm-start settings with ``steps`` SFT steps (the tiny model's ``max_steps``, LoRA's ``steps``)."""
        key = "max_steps" if hasattr(self.warm_start, "max_steps") else "steps"
        return replace(self.warm_start, **{key: steps})


def get_task_recipe(name: str) -> TaskRecipe:
    """The recipe of ``"flag"`` (the study's task), ``"arith"`` (the original demo task) or ``"wordop"`` (word
    problems for SmolLM2)."""
    from oarl.testbed.experiment import RLSettings
    from oarl.testbed.warmstart import WarmStartConfig

    if name == "arith":
        rl = RLSettings(steps=100, learning_rate=3e-5, eval_every=20, noise_std=0.1)
        return TaskRecipe(ArithConfig(), ArithTask, WarmStartConfig(), rl)
    if name == "flag":
        from oarl.testbed.tasks.flag_task import flag_recipe

        return flag_recipe()
    if name == "wordop":
        from oarl.testbed.tasks.wordop_task import wordop_recipe

        return wordop_recipe()
    raise ValueError(f"unknown task {name!r}; expected 'flag', 'arith' or 'wordop'")


def task_from_identity(identity: dict[str, Any]):
    """The task an ``identity()`` dict describes (as saved in a warm start's ``oarl_warmstart.json``); a dict
    without a ``task`` name is an arithmetic config (checkpoints written before the flag task existed)."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in identity.items() if k != "task"}
    name = identity.get("task", "arith")
    if name == "arith":
        return ArithTask(ArithConfig(**fields))
    if name == "flag":
        from oarl.testbed.tasks.flag import FlagConfig
        from oarl.testbed.tasks.flag_task import FlagTask

        return FlagTask(FlagConfig(**fields))
    if name == "wordop":
        from oarl.testbed.tasks.wordop import WordOpConfig
        from oarl.testbed.tasks.wordop_task import WordOpTask

        return WordOpTask(WordOpConfig(**fields))
    raise ValueError(f"unknown task {name!r} in a checkpoint's oarl_warmstart.json")


__all__ = [
    "ANSWER_MARKER",
    "ArithConfig",
    "ArithProblem",
    "ArithTask",
    "TaskRecipe",
    "arith_reward",
    "build_tiny_model",
    "build_tokenizer",
    "char_spans_to_token_mask",
    "dependency_path",
    "extract_answer",
    "generate_problems",
    "get_task_recipe",
    "task_from_identity",
    "make_dataset",
    "oracle_char_spans_for",
]
