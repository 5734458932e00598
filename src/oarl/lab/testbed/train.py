"""The trainer ``oarl train`` builds from its task fields: datasets, reward, held-out callback, OARGRPOTrainer.

Tasks: every registered testbed task (:data:`oarl.lab.testbed.tasks.TASKS`: ``flag``, ``arith``, ``wordop``,
``wordop2``; their recipe's warm start, rewarded and labelled by the task, greedy held-out accuracy every
``eval_every`` steps) and the math tasks ``gsm8k`` / ``math500`` (the local benchmark copies) and ``jsonl``
(any JSONL/Parquet file of questions and answers), which need ``model_path`` and are evaluated afterwards
with ``oarl eval``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from oarl.integrations.trl.lora import lora_config
from oarl.integrations.trl.trainer import OARGRPOTrainer, config_fields
from oarl.lab.math.data import load_gsm8k, load_math500, load_records
from oarl.lab.math.prompts import PromptTemplate, add_prompts
from oarl.lab.testbed.experiment import HeldOutAccuracy, JsonlWriter, load_policy
from oarl.lab.testbed.progress import StepProgress
from oarl.lab.testbed.tasks import ArithTask, arith, get_task, task_names, tasks_help
from oarl.lab.testbed.tasks.base import decision_labeler, rl_dataset
from oarl.lab.testbed.warmstart import WarmStartConfig, warm_start
from oarl.utils.checkpoint import load_tokenizer

MATH_TASKS = ("gsm8k", "math500", "jsonl")
TASKS = (*task_names(), *MATH_TASKS)


@dataclass
class TaskArguments:
    task: str = field(
        default="arith",
        metadata={
            "help": f"a testbed task ({tasks_help()}) or a math task ({' | '.join(MATH_TASKS)})",
            "choices": list(TASKS),
        },
    )
    model_path: str | None = field(
        default=None,
        metadata={
            "help": "local model folder (required for math tasks); testbed tasks' default: the recipe's warm "
            "start (shipped, cached or trained now)"
        },
    )
    task_config: dict | str | None = field(
        default=None,
        metadata={
            "help": "testbed tasks other than arith: fields of the task's config over its recipe's, a dict or a "
            'JSON string (e.g. \'{"chatter": "heavy"}\'); arith takes the fields below'
        },
    )
    # math tasks
    data_path: str | None = field(default=None, metadata={"help": "jsonl task: the JSONL or Parquet file"})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "folder of the benchmark files (default $OARL_DATA_DIR or ../shared/data)"},
    )
    split: str = field(default="train", metadata={"help": "gsm8k: train or test"})
    question_field: str = field(
        default="question", metadata={"help": "jsonl task: field holding the question"}
    )
    answer_field: str = field(
        default="answer", metadata={"help": "jsonl task: field holding the reference answer"}
    )
    max_rows: int | None = field(default=None, metadata={"help": "math tasks: use only the first N rows"})
    prompt_style: str = field(
        default="auto", metadata={"help": "auto | chat | plain | raw (see oarl.lab.math.prompts)"}
    )
    instruction: str | None = field(
        default=None, metadata={"help": "appended to each question (default: \\boxed{} prompt)"}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "chat style: an optional system message"}
    )
    plain_format: str | None = field(
        default=None, metadata={"help": "plain style: format with {question}, {instruction}"}
    )
    reward_timeout: int = field(default=5, metadata={"help": "math-verify timeout per call, seconds"})
    format_reward_weight: float = field(default=0.0, metadata={"help": "bonus for any final-answer span"})
    # testbed tasks
    train_size: int = field(default=2000, metadata={"help": "testbed tasks: training prompts to generate"})
    eval_size: int = field(
        default=200, metadata={"help": "testbed tasks: held-out problems for greedy accuracy"}
    )
    eval_every: int = field(default=10, metadata={"help": "testbed tasks: evaluate every N steps"})
    # arith task
    chain_steps: str = "2"
    distractor_steps: str = "1"
    const_max: int = 9
    value_max: int = 19
    task_seed: int = 0
    cache_dir: str = "runs/cache"
    resume: bool = field(
        default=False,
        metadata={
            "help": "continue from the last complete checkpoint in output_dir (fresh start if there is none); "
            "metrics.jsonl is trimmed back to that step"
        },
    )

    def __post_init__(self) -> None:
        """Reject out-of-range values at parse time, before any model or data is loaded."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {TASKS}")
        if isinstance(self.task_config, str):
            try:
                self.task_config = json.loads(self.task_config)
            except json.JSONDecodeError as e:
                raise ValueError(f"task_config is not valid JSON: {e}") from None
        if self.task_config is not None:
            if not isinstance(self.task_config, dict):
                raise ValueError(f"task_config must be a dict of task fields, got {self.task_config!r}")
            if self.task in MATH_TASKS or self.task == "arith":
                raise ValueError(
                    f"task_config applies to the testbed tasks other than arith, not {self.task!r}"
                )
        positive = {
            "reward_timeout": self.reward_timeout,
            "train_size": self.train_size,
            "eval_size": self.eval_size,
            "eval_every": self.eval_every,
        }
        if self.max_rows is not None:
            positive["max_rows"] = self.max_rows
        for name, value in positive.items():
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if not (math.isfinite(self.format_reward_weight) and self.format_reward_weight >= 0):
            raise ValueError(
                f"format_reward_weight must be a finite number >= 0, got {self.format_reward_weight}"
            )


def recipe_fields(task: str) -> dict[str, Any]:
    """The ``OARConfig`` (and LoRA) fields of a testbed task's recipe (:class:`~oarl.lab.testbed.settings.RLSettings`:
    its lr, lengths, batch, steps, OAR settings); ``{}`` for a math task (no recipe: ``recipes/`` has YAML ones).

    What :func:`oarl.lab.testbed.experiment.run_arm` sets for a study's arm, so ``oarl train --task flag`` trains
    as the study does. Device and precision are not here: :func:`oarl.utils.device.device_flags` decides them.
    """
    if task in MATH_TASKS:
        return {}
    rl = get_task(task).recipe().rl
    oar = rl.oar
    out: dict[str, Any] = {
        "max_steps": rl.steps,
        "learning_rate": rl.learning_rate,
        "lr_scheduler_type": "constant",
        "per_device_train_batch_size": rl.prompts_per_step * rl.num_generations,
        "num_generations": rl.num_generations,
        "max_completion_length": rl.max_completion_length,
        "temperature": rl.temperature,
        "beta": rl.kl_beta,
        "eval_every": rl.eval_every,
        "logging_steps": 1,
        "gradient_checkpointing": False,
        "log_completions": False,
        "disable_tqdm": True,
        "report_to": "none",
    }
    # every OAR field of the recipe, derived as run_arm derives them (the unset ones keep OARConfig's None)
    out.update({k: v for k, v in config_fields(oar).items() if v is not None})
    if rl.bf16:  # measured for this recipe (CPU autocast too); otherwise the machine decides
        out["bf16"] = True
    if rl.lora_rank:
        out.update(
            use_peft=True,
            lora_r=rl.lora_rank,
            lora_alpha=2 * rl.lora_rank,
            lora_dropout=0.0,
            lora_target_modules=list(rl.lora_targets),
        )
    out.update(rl.extra)
    return out


def prompt_template(task_args: TaskArguments):
    """The :class:`oarl.lab.math.prompts.PromptTemplate` the task fields describe (unset fields keep the defaults)."""
    given = {
        "instruction": task_args.instruction,
        "system_prompt": task_args.system_prompt,
        "plain_format": task_args.plain_format,
    }
    return PromptTemplate(style=task_args.prompt_style, **{k: v for k, v in given.items() if v is not None})


def math_train_dataset(task_args: TaskArguments, tokenizer):
    """The math task's training rows with a ``prompt`` column (and ``answer``, the reward's references)."""
    if task_args.task == "gsm8k":
        ds = load_gsm8k(task_args.split, task_args.data_dir)
    elif task_args.task == "math500":
        ds = load_math500(task_args.data_dir)
    else:
        if not task_args.data_path:
            raise ValueError("task 'jsonl' needs data_path (a .jsonl or .parquet file)")
        ds = load_records(task_args.data_path, task_args.question_field, task_args.answer_field)
    if task_args.max_rows is not None:
        ds = ds.select(range(min(task_args.max_rows, len(ds))))
    return add_prompts(ds, tokenizer, prompt_template(task_args))


def build_trainer(task_args: TaskArguments, config, lora_args=None):
    """The ``OARGRPOTrainer`` for a task (not yet trained) and its held-out callback (arith only, else None).

    ``lora_args`` (:class:`oarl.integrations.trl.lora.LoraArguments`) with ``use_peft`` trains LoRA adapters.
    """
    from transformers import PrinterCallback

    if task_args.task not in TASKS:
        raise ValueError(f"unknown task {task_args.task!r}; expected one of {TASKS}")
    out = Path(config.output_dir)
    writer = JsonlWriter(out / "metrics.jsonl")
    tag = {"method": config.oar_method, "label": config.oar_method, "seed": config.seed}
    held_out = None
    labeler = None
    if task_args.task == "arith":
        model, tok, train, reward, held_out, labeler = _arith_parts(task_args, config, writer, tag)
    elif task_args.task not in MATH_TASKS:
        model, tok, train, reward, held_out, labeler = _testbed_parts(task_args, config, writer, tag)
    else:
        # the math extra (math-verify) only for a math task: `oarl train --task flag` runs without it
        from oarl.lab.math.rewards import make_math_reward

        if not task_args.model_path:
            raise ValueError(f"task {task_args.task!r} needs model_path (a local model folder)")
        tok = load_tokenizer(task_args.model_path)
        train = math_train_dataset(task_args, tok)
        reward = make_math_reward("answer", task_args.reward_timeout, task_args.format_reward_weight)
        model = task_args.model_path  # TRL loads it, applying config.model_init_kwargs (dtype, attention)
    progress = StepProgress(f"oarl train ({config.oar_method})", config.process_index == 0, held_out)
    callbacks = [held_out or MetricsLog(writer, tag), progress]
    trainer = OARGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=train,
        processing_class=tok,
        callbacks=callbacks,
        peft_config=lora_config(lora_args),
        token_labeler=labeler,
    )
    trainer.remove_callback(PrinterCallback)
    if not logs_every_step(config):  # metrics.jsonl still gets every step's oar/* (TRL logs only every N)
        trainer.add_callback(OARStepLog(writer, tag, trainer._oar_step, config.process_index == 0))
    return trainer, held_out


def logs_every_step(config) -> bool:
    """Whether TRL logs (and so :class:`MetricsLog` writes) every step: ``logging_steps: 1`` by steps."""
    strategy = getattr(config.logging_strategy, "value", config.logging_strategy)
    return strategy == "steps" and config.logging_steps == 1


class OARStepLog(TrainerCallback):
    """Writes each step's ``oar/*`` metrics to ``metrics.jsonl`` when TRL logs less often than every step.

    One line ``{tag, "step", "oar/...": ...}`` per step that scored a new batch (the OAR step's
    ``last_metrics``); the lines TRL logs every ``logging_steps`` (loss, reward, ... and TRL's mean of the
    ``oar/*`` over the window) are written by :class:`MetricsLog` as before.
    """

    def __init__(self, writer, tag: dict, oar_step, enabled: bool = True) -> None:
        self.writer, self.tag, self.oar_step, self.enabled = writer, tag, oar_step, enabled
        self.seen = 0

    def on_step_end(self, args, state, control, **kwargs):
        if self.enabled and self.oar_step.calls != self.seen and self.oar_step.last_metrics:
            self.seen = self.oar_step.calls
            self.writer.write({**self.tag, "step": state.global_step, **self.oar_step.last_metrics})


class MetricsLog(TrainerCallback):
    """Appends every logged training step to ``metrics.jsonl`` (main process only)."""

    def __init__(self, writer, tag: dict) -> None:
        self.writer, self.tag = writer, tag

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and state.is_world_process_zero:
            self.writer.write({**self.tag, "step": state.global_step, **logs})


def _arith_parts(task_args: TaskArguments, config: Any, writer: Any, tag: dict) -> tuple:
    from transformers import AutoModelForCausalLM

    task = arith.ArithConfig(
        chain_steps=int_pair(task_args.chain_steps),
        distractor_steps=int_pair(task_args.distractor_steps),
        const_max=task_args.const_max,
        value_max=task_args.value_max,
        seed=task_args.task_seed,
    )
    path = task_args.model_path or warm_start(ArithTask(task), WarmStartConfig(), task_args.cache_dir)
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    train = arith.make_dataset(task_args.train_size, replace(task, seed=task.seed + 20_000))
    held_out = arith.generate_problems(task_args.eval_size, replace(task, seed=task.seed + 30_000))
    acc = HeldOutAccuracy(writer, tag, tok, held_out, task_args.eval_every, config.max_completion_length)
    return model, tok, train, arith.arith_reward, acc, decision_labeler(ArithTask(task))


def _testbed_parts(task_args: TaskArguments, config: Any, writer: Any, tag: dict) -> tuple:
    """A registered testbed task from its recipe (the config with ``task_config`` over it) and warm start."""
    spec = get_task(task_args.task)
    recipe = spec.recipe()
    task = spec.task(replace(recipe.config, **(task_args.task_config or {})))
    path = task_args.model_path or recipe.checkpoint(task, recipe.warm_start, task_args.cache_dir)
    model, tok = load_policy(path)  # a LoRA warm start (wordop) is merged into its base model
    train = rl_dataset(task, task_args.train_size, seed=20_000)
    held_out = task.problems(task_args.eval_size, seed=30_000)
    acc = HeldOutAccuracy(
        writer, tag, tok, held_out, task_args.eval_every, config.max_completion_length, reward=task.reward
    )
    return model, tok, train, task.reward, acc, decision_labeler(task)


def int_pair(text: str) -> tuple[int, int]:
    """``"2,4"`` -> ``(2, 4)``; ``"3"`` -> ``(3, 3)`` (the arith task's step ranges)."""
    lo, _, hi = text.partition(",")
    return int(lo), int(hi or lo)
