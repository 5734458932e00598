"""The task registry: each testbed task is declared once, where it is defined, as a :class:`TaskSpec`.

As the scorer registry (:mod:`oarl.core.scorers.registry`): one entry per task (its name, a line of help, its
config and task classes, its recipe), a name registered twice raises, and the command line reads its choices
and help from here (``oarl train --task``, ``oarl study --task``, ``oarl demo``), not from a list of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from oarl.lab.testbed.warmstart import warm_start as sft_warm_start


@dataclass(frozen=True)
class TaskRecipe:
    """Defaults of a study on one task: its config, how to build the task from it, warm start and RL.

    ``warm(task, warm_start, cache_dir, threads) -> path`` gives the checkpoint RL starts from (shipped, cached
    or trained now); default :func:`oarl.lab.testbed.warmstart.warm_start` (the tiny model's SFT)."""

    config: Any
    make: Callable[[Any], Any]
    warm_start: Any
    rl: Any
    warm: Callable[..., Any] | None = None

    def checkpoint(self, task: Any, warm_start: Any, cache_dir: str, threads: int | None = 1) -> str:
        """The warm start's path for ``task`` (a variant of this recipe's) with settings ``warm_start``."""
        if self.warm is not None:
            return str(self.warm(task, warm_start, cache_dir, threads=threads))

        return str(sft_warm_start(task, warm_start, cache_dir, threads=threads))

    def with_sft_steps(self, steps: int) -> Any:
        """The warm-start settings with ``steps`` SFT steps (the tiny model's ``max_steps``, LoRA's ``steps``)."""
        key = "max_steps" if hasattr(self.warm_start, "max_steps") else "steps"
        return replace(self.warm_start, **{key: steps})


@dataclass(frozen=True)
class TaskSpec:
    """A testbed task's declaration: ``config`` (its config dataclass), ``task(config)`` (the
    :class:`~oarl.lab.testbed.tasks.base.TestbedTask`), ``recipe()`` (its :class:`TaskRecipe`; built on call, as
    the warm start and RL settings are read fresh) and ``help`` (one line for the command line)."""

    name: str
    help: str
    config: type
    task: Callable[[Any], Any]
    recipe: Callable[[], TaskRecipe]

    def from_identity(self, identity: dict[str, Any]) -> Any:
        """The task an ``identity()`` dict describes (JSON lists read back as the config's tuples)."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in identity.items() if k != "task"}
        return self.task(self.config(**fields))


#: Every registered task, by name, in registration order.
TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS`; a name registered twice raises."""
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} is registered twice")
    TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; ValueError listing the registered ones otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {list(TASKS)}")
    return TASKS[name]


def task_names() -> list[str]:
    """The registered tasks' names (the command line's choices)."""
    return list(TASKS)


def tasks_help() -> str:
    """``name: help`` of every registered task, for a command-line option's help text."""
    return "; ".join(f"{s.name}: {s.help}" for s in TASKS.values())
