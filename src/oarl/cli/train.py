"""Train with GRPO or OAR from a YAML config: ``oarl train --config FILE.yaml [--field value ...]``.

The YAML holds ``OARConfig`` fields (all of TRL's ``GRPOConfig`` plus ``oar_*``) and the task fields below;
command-line flags override it. Tasks: the testbed's (``flag``, the study's task, ``recipes/flag.yaml``;
``arith``, the original demo's, ``recipes/demo_arith.yaml``; ``wordop``), each from its recipe's warm start,
``gsm8k`` / ``math500`` (the local benchmark copies) and ``jsonl`` (any JSONL/Parquet file of questions and
answers). Math tasks need ``model_path`` (a local model folder), are rewarded by
:func:`oarl.lab.math.rewards.make_math_reward` and are evaluated afterwards with ``oarl eval``. Runs under
``accelerate launch`` as they are (see ``recipes/``). ``--use_peft`` trains LoRA adapters (flags as in TRL's
scripts, :mod:`oarl.integrations.trl.lora`); ``final`` then holds the merged model and ``final/adapter`` the
adapters. SIGTERM stops after the current step with a checkpoint (exit code 143); ``--resume`` continues from
the last complete checkpoint (see :mod:`oarl.integrations.trl.resume`). The trainer itself is built by
:func:`oarl.lab.testbed.train.build_trainer`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oarl.cli._args import usage_error
from oarl.lab.models.resolve import resolve_model
from oarl.lab.testbed.train import TASKS, MetricsLog, TaskArguments, build_trainer

__all__ = ["TASKS", "MetricsLog", "TaskArguments", "build_trainer", "main", "resume_checkpoint", "run"]


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
        return usage_error("train", e)
    return run(task_args, config, lora_args)


def resume_checkpoint(task_args: TaskArguments, config) -> str | None:
    """The checkpoint to resume from (``--resume``: the last complete one; or ``--resume_from_checkpoint``).

    The metrics JSONL is trimmed back to that checkpoint's step, so the resumed run's lines continue it.
    """
    from oarl.integrations.trl.resume import checkpoint_step, last_checkpoint
    from oarl.lab.testbed.experiment import JsonlWriter

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
