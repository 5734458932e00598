"""The task registry: one entry per task, read by train, study and demo; `oarl train` runs the flag task; the
flag recipe loads without TRL."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from oarl.lab.testbed.tasks import TASKS, TaskSpec, get_task, register_task, task_from_identity


def test_one_entry_per_task_and_a_name_registered_twice_raises():
    assert list(TASKS) == ["arith", "flag", "wordop", "wordop2"]
    for name, spec in TASKS.items():
        assert spec.name == name and spec.help
        recipe = spec.recipe()
        task = recipe.make(recipe.config)
        assert isinstance(recipe.config, spec.config) and task.name == name
        assert task_from_identity(task.identity()) == task
    with pytest.raises(ValueError, match="registered twice"):
        register_task(
            TaskSpec("flag", "again", *(getattr(TASKS["flag"], k) for k in ("config", "task", "recipe")))
        )
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        get_task("poetry")
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        task_from_identity({"task": "poetry"})
    assert task_from_identity({"seed": 3}) == get_task("arith").task(get_task("arith").config(seed=3))


def test_the_commands_read_their_task_choices_from_the_registry():
    from oarl.cli.demo import MODELS
    from oarl.cli.study import build_parser
    from oarl.lab.testbed.train import TASKS as TRAIN_TASKS
    from oarl.lab.testbed.train import TaskArguments

    study_task = next(a for a in build_parser()._actions if a.dest == "task")
    assert list(study_task.choices) == list(TASKS)
    assert all(TASKS[n].help in study_task.help for n in TASKS)
    task_field = next(f for f in fields(TaskArguments) if f.name == "task")
    assert list(task_field.metadata["choices"]) == list(TRAIN_TASKS) and set(TASKS) <= set(TRAIN_TASKS)
    assert {m["task"] for m in MODELS.values()} <= set(TASKS)


def test_the_flag_recipe_and_the_single_file_loop_load_without_trl():
    examples = Path(__file__).resolve().parents[1] / "examples"
    code = (
        f"import sys; sys.path.insert(0, {str(examples)!r}); import grpo_oar; "
        "from oarl.lab.testbed.tasks import get_task_recipe; r = get_task_recipe('flag'); "
        "assert r.rl.oar.noise_std == 0.1; assert 'trl' not in sys.modules, 'trl imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_task_config_applies_to_testbed_tasks_only():
    from oarl.lab.testbed.train import TaskArguments

    assert TaskArguments(task="flag", task_config='{"chatter": "heavy"}').task_config == {"chatter": "heavy"}
    with pytest.raises(ValueError, match="not valid JSON"):
        TaskArguments(task="flag", task_config="{chatter")
    with pytest.raises(ValueError, match="task_config applies"):
        TaskArguments(task="gsm8k", task_config={"chatter": "heavy"})


def test_oarl_train_runs_the_flag_task(tmp_path):
    """One step of the oracle arm (the task's labeler reaches the trainer) from the shipped flag warm start."""
    from oarl.cli import train

    out = tmp_path / "run"
    argv = [
        "--task",
        "flag",
        "--task_config",
        '{"chatter": "some"}',
        "--output_dir",
        str(out),
        "--oar_method",
        "oracle",
        "--use_cpu",
        "true",
        "--report_to",
        "none",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--num_generations",
        "2",
        "--max_completion_length",
        "24",
        "--train_size",
        "8",
        "--eval_size",
        "2",
        "--eval_every",
        "1",
        "--save_strategy",
        "no",
        "--cache_dir",
        str(tmp_path / "cache"),
        "--disable_tqdm",
        "true",
        "--logging_steps",
        "1",
    ]
    assert train.main(argv) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("accuracy" in r for r in lines) and any("oar/ess_ratio" in r for r in lines)
    assert (out / "final" / "config.json").exists()
    assert not (tmp_path / "cache").exists()  # the shipped warm start: nothing trained
