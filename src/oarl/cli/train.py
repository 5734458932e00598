"""Train with GRPO or OAR from a YAML config: ``oarl train --config FILE.yaml [--field value ...]``.

The YAML holds ``OARConfig`` fields (all of TRL's ``GRPOConfig`` plus ``oar_*``) and the task fields below;
command-line flags override it. Tasks: ``arith`` (the demo's embedded task; ``recipes/demo_arith.yaml``),
``gsm8k`` / ``math500`` (the local benchmark copies) and ``jsonl`` (any JSONL/Parquet file of questions and
answers). Math tasks need ``model_path`` (a local model folder), are rewarded by
:func:`oarl.math.rewards.make_math_reward` and are evaluated afterwards with ``oarl eval``. Runs under
``accelerate launch`` as they are (see ``recipes/``). ``--use_peft`` trains LoRA adapters (flags as in TRL's scripts,
:mod:`oarl.integrations.trl.lora`); ``final`` then holds the merged model and ``final/adapter`` the adapters. SIGTERM stops after the current step with a checkpoint
(exit code 143); ``--resume`` continues from the last complete checkpoint (see :mod:`oarl.integrations.trl.resume`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from transformers import TrainerCallback

from oarl.models.resolve import resolve_model

TASKS = ("arith", "gsm8k", "math500", "jsonl")


@dataclass
class TaskArguments:
    task: str = field(
        default="arith", metadata={"help": "arith | gsm8k | math500 | jsonl", "choices": list(TASKS)}
    )
    model_path: str | None = field(
        default=None,
        metadata={
            "help": "local model folder (required for math tasks); arith default: the cached SFT warm start"
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
        default="auto", metadata={"help": "auto | chat | plain | raw (see oarl.math.prompts)"}
    )
    instruction: str | None = field(default=None, metadata={"help": "appended to each question (default: \\boxed{} prompt)"})  # fmt: skip
    system_prompt: str | None = field(
        default=None, metadata={"help": "chat style: an optional system message"}
    )
    plain_format: str | None = field(default=None, metadata={"help": "plain style: format with {question}, {instruction}"})  # fmt: skip
    reward_timeout: int = field(default=5, metadata={"help": "math-verify timeout per call, seconds"})
    format_reward_weight: float = field(default=0.0, metadata={"help": "bonus for any final-answer span"})
    # arith task
    train_size: int = field(default=2000, metadata={"help": "arith: training prompts to generate"})
    eval_size: int = field(default=200, metadata={"help": "arith: held-out problems for greedy accuracy"})
    eval_every: int = field(default=10, metadata={"help": "arith: evaluate every N steps"})
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


def main(argv: list[str]) -> int:
    from trl import TrlParser

    from oarl.integrations.trl.lora import LoraArguments
    from oarl.integrations.trl.trainer import OARConfig

    parser = TrlParser(
        [TaskArguments, OARConfig, LoraArguments], prog="oarl train", description=__doc__.splitlines()[0]
    )
    task_args, config, lora_args = parser.parse_args_and_config(argv)
    try:
        task_args.model_path = task_args.model_path and resolve_model(task_args.model_path)
    except FileNotFoundError as e:
        print(f"oarl train: error: {e}", file=sys.stderr)
        return 2
    return run(task_args, config, lora_args)


def prompt_template(task_args: TaskArguments):
    """The :class:`oarl.math.prompts.PromptTemplate` the task fields describe (unset fields keep the defaults)."""
    from oarl.math.prompts import PromptTemplate

    given = {
        "instruction": task_args.instruction,
        "system_prompt": task_args.system_prompt,
        "plain_format": task_args.plain_format,
    }
    return PromptTemplate(style=task_args.prompt_style, **{k: v for k, v in given.items() if v is not None})


def math_train_dataset(task_args: TaskArguments, tokenizer):
    """The math task's training rows with a ``prompt`` column (and ``answer``, the reward's references)."""
    from oarl.math.data import load_gsm8k, load_math500, load_records
    from oarl.math.prompts import add_prompts

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

    from oarl.integrations.trl.lora import lora_config
    from oarl.integrations.trl.trainer import OARGRPOTrainer
    from oarl.testbed.experiment import JsonlWriter, StepProgress
    from oarl.utils.checkpoint import load_tokenizer

    if task_args.task not in TASKS:
        raise ValueError(f"unknown task {task_args.task!r}; expected one of {TASKS}")
    out = Path(config.output_dir)
    writer = JsonlWriter(out / "metrics.jsonl")
    tag = {"method": config.oar_method, "label": config.oar_method, "seed": config.seed}
    held_out = None
    if task_args.task == "arith":
        model, tok, train, reward, held_out = _arith_parts(task_args, config, writer, tag)
    else:
        from oarl.math.rewards import make_math_reward

        if not task_args.model_path:
            raise ValueError(f"task {task_args.task!r} needs model_path (a local model folder)")
        tok = load_tokenizer(task_args.model_path)
        train = math_train_dataset(task_args, tok)
        reward = make_math_reward("answer", task_args.reward_timeout, task_args.format_reward_weight)
        model = task_args.model_path  # TRL loads it, applying config.model_init_kwargs (dtype, attention)
    progress = StepProgress(f"oarl train ({config.oar_method})", config.process_index == 0, held_out)
    callbacks = [held_out or MetricsLog(writer, tag), progress]
    trainer = OARGRPOTrainer(
        model=model, reward_funcs=reward, args=config, train_dataset=train, processing_class=tok,
        callbacks=callbacks, peft_config=lora_config(lora_args),
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    return trainer, held_out


class MetricsLog(TrainerCallback):
    """Appends every logged training step to ``metrics.jsonl`` (main process only)."""

    def __init__(self, writer, tag: dict) -> None:
        self.writer, self.tag = writer, tag

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and state.is_world_process_zero:
            self.writer.write({**self.tag, "step": state.global_step, **logs})


def _arith_parts(task_args: TaskArguments, config, writer, tag):
    from transformers import AutoModelForCausalLM

    from oarl.cli.demo import _pair
    from oarl.testbed.experiment import HeldOutAccuracy
    from oarl.testbed.tasks import arith
    from oarl.testbed.warmstart import WarmStartConfig, warm_start
    from oarl.utils.checkpoint import load_tokenizer

    task = arith.ArithConfig(
        chain_steps=_pair(task_args.chain_steps), distractor_steps=_pair(task_args.distractor_steps),
        const_max=task_args.const_max, value_max=task_args.value_max, seed=task_args.task_seed,
    )  # fmt: skip
    path = task_args.model_path or warm_start(task, WarmStartConfig(), task_args.cache_dir)
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    train = arith.make_dataset(task_args.train_size, replace(task, seed=task.seed + 20_000))
    held_out = arith.generate_problems(task_args.eval_size, replace(task, seed=task.seed + 30_000))
    acc = HeldOutAccuracy(writer, tag, tok, held_out, task_args.eval_every, config.max_completion_length)
    return model, tok, train, arith.arith_reward, acc


def resume_checkpoint(task_args: TaskArguments, config) -> str | None:
    """The checkpoint to resume from (``--resume``: the last complete one; or ``--resume_from_checkpoint``).

    The metrics JSONL is trimmed back to that checkpoint's step, so the resumed run's lines continue it.
    """
    from oarl.integrations.trl.resume import checkpoint_step, last_checkpoint
    from oarl.testbed.experiment import JsonlWriter

    ckpt = config.resume_from_checkpoint
    if task_args.resume and ckpt is None:
        ckpt = last_checkpoint(config.output_dir)
        if ckpt is None:
            print(f"--resume: no complete checkpoint in {config.output_dir}; starting from step 0")
    if ckpt is not None and config.process_index == 0:
        dropped = JsonlWriter(Path(config.output_dir) / "metrics.jsonl").trim_after(checkpoint_step(ckpt))
        print(f"resuming from {ckpt}" + (f" ({dropped} later metric line(s) dropped)" if dropped else ""))
    return ckpt


def run(task_args: TaskArguments, config, lora_args=None) -> int:
    from oarl.integrations.trl.lora import save_merged
    from oarl.integrations.trl.resume import INTERRUPTED_EXIT_CODE, GracefulStop

    ckpt = resume_checkpoint(task_args, config)
    trainer, held_out = build_trainer(task_args, config, lora_args)
    stop = GracefulStop()
    trainer.add_callback(stop)
    trainer.train(resume_from_checkpoint=ckpt)
    out = Path(config.output_dir)
    if stop.stopped_at is not None:
        if trainer.accelerator.is_main_process:
            print(f"interrupted: checkpoint saved at step {stop.stopped_at} in {out}; continue with --resume")
        return INTERRUPTED_EXIT_CODE
    if not (lora_args is not None and lora_args.use_peft and save_merged(trainer, out / "final")):
        trainer.save_model(str(out / "final"))
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(str(out / "final"))
        done = f"model in {out / 'final'}; metrics in {out / 'metrics.jsonl'}"
        if held_out is not None and held_out.last_accuracy is not None:
            print(f"final accuracy {held_out.last_accuracy:.3f}; {done}")
        elif held_out is not None:
            print(done)
        else:
            print(f"{done}; evaluate with: oarl eval --model {out / 'final'} --data DATA")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
