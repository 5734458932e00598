"""Embedded synthetic tasks (offline, CPU-friendly) with known causal structure, and their recipes: the task
config, warm start and RL settings a study of that task starts from."""

from __future__ import annotations

from typing import Any

from oarl.lab.testbed.tasks.arith import (
    ANSWER_MARKER,
    ArithConfig,
    ArithProblem,
    arith_reward,
    char_spans_to_token_mask,
    dependency_path,
    extract_answer,
    generate_problems,
    make_dataset,
    oracle_char_spans_for,
)
from oarl.lab.testbed.tasks.arith_task import ArithTask
from oarl.lab.testbed.tasks.flag_task import FlagTask
from oarl.lab.testbed.tasks.registry import (
    TASKS,
    TaskRecipe,
    TaskSpec,
    get_task,
    register_task,
    task_names,
    tasks_help,
)
from oarl.lab.testbed.tasks.wordop2_task import WordOp2Task
from oarl.lab.testbed.tasks.wordop_task import WordOpTask


def get_task_recipe(name: str) -> TaskRecipe:
    """The recipe of a registered task (:data:`TASKS`: ``"flag"``, the study's task; ``"arith"``, the original
    demo task; ``"wordop"``, word problems for SmolLM2; ``"wordop2"``, the same with two operations)."""
    return get_task(name).recipe()


def task_from_identity(identity: dict[str, Any]) -> Any:
    """The task an ``identity()`` dict describes (as saved in a warm start's ``oarl_warmstart.json``); a dict
    without a ``task`` name is an arithmetic config (checkpoints written before the flag task existed)."""
    name = identity.get("task", "arith")
    if name not in TASKS:
        raise ValueError(
            f"unknown task {name!r} in a checkpoint's oarl_warmstart.json; expected one of {list(TASKS)}"
        )
    return TASKS[name].from_identity(identity)


__all__ = [
    "ANSWER_MARKER",
    "ArithConfig",
    "ArithProblem",
    "ArithTask",
    "FlagTask",
    "TASKS",
    "TaskRecipe",
    "TaskSpec",
    "WordOpTask",
    "WordOp2Task",
    "arith_reward",
    "char_spans_to_token_mask",
    "dependency_path",
    "extract_answer",
    "generate_problems",
    "get_task",
    "get_task_recipe",
    "register_task",
    "task_names",
    "tasks_help",
    "task_from_identity",
    "make_dataset",
    "oracle_char_spans_for",
]
