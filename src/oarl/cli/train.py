"""Train with GRPO or OAR from a YAML config: ``oarl train --config FILE.yaml [--field value ...]``.

The YAML holds ``OARConfig`` fields (all of TRL's ``GRPOConfig`` plus ``oar_*``) and the task fields below;
command-line flags override it. Tasks: the testbed's (``flag``, the study's task, ``recipes/flag.yaml``;
``arith``, the original demo's, ``recipes/demo_arith.yaml``; ``wordop``, ``wordop2``), each from its recipe's
warm start, ``gsm8k`` / ``math500`` (the local benchmark copies) and ``jsonl`` (any JSONL/Parquet file of
questions and answers). Math tasks need ``model_path`` (a local model folder), are rewarded by
:func:`oarl.lab.math.rewards.make_math_reward` and are evaluated afterwards with ``oarl eval``. Runs under
``accelerate launch`` as they are (see ``recipes/``). ``--use_peft`` trains LoRA adapters (flags as in TRL's
scripts, :mod:`oarl.integrations.trl.lora`); ``final`` then holds the merged model and ``final/adapter`` the
adapters. A testbed task runs its recipe (:func:`oarl.lab.testbed.train.recipe_fields`) on the machine's
device (:mod:`oarl.utils.device`); what the user gives wins and is echoed. Ctrl-C or SIGTERM stops after the
current step with a checkpoint (exit code 130 / 143) and prints the resume command; ``--resume`` continues from
the last complete checkpoint (see :mod:`oarl.integrations.trl.resume`). The trainer itself is built by
:func:`oarl.lab.testbed.train.build_trainer`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from oarl.cli._args import check_config_keys, flags_given, new_root, read_config, remove_if_empty, usage_error
from oarl.lab.models.resolve import resolve_model
from oarl.lab.testbed.train import TASKS, MetricsLog, TaskArguments, build_trainer

__all__ = ["TASKS", "MetricsLog", "TaskArguments", "build_trainer", "main", "resume_checkpoint", "run"]


#: What Ctrl-C outside a clean stop point leaves, and how to go on (printed by ``oarl``; see
#: :func:`oarl.utils.interrupt.interrupted_message`).
RESUME_HINT = "continue from the last checkpoint, if any, with: {command} --resume"


def main(argv: list[str]) -> int:
    from trl import TrlParser

    from oarl.integrations.trl.lora import LoraArguments
    from oarl.integrations.trl.trainer import OARConfig

    types = [TaskArguments, OARConfig, LoraArguments]
    parser = TrlParser(types, prog="oarl train", description=__doc__.splitlines()[0], epilog=EPILOG)
    if any(a in ("-h", "--help") for a in argv):
        parser.parse_args_and_config(argv)  # prints the help and exits
    try:
        path, from_file = read_config(argv)
        if path is not None:
            check_config_keys(
                from_file, {f.name for t in types for f in dataclasses.fields(t)}, path, "train"
            )
        given = {**from_file, **flags_given(argv)}
        applied = task_defaults(str(given.get("task", TaskArguments.task)), given)
        parser.set_defaults_with_config(**applied)
        task_args, config, lora_args = parser.parse_args_and_config(argv)
        task_args.model_path = task_args.model_path and resolve_model(task_args.model_path)
    except (ValueError, FileNotFoundError) as e:
        return usage_error("train", e)
    return run(task_args, config, lora_args)


EPILOG = (
    "Writes OUTPUT_DIR/{metrics.jsonl, checkpoint-N/, final/} (OUTPUT_DIR default: runs/train/<task>-<method>). "
    "A testbed task (--task flag|arith|wordop|wordop2) runs its recipe (lr, lengths, batch, steps, OAR "
    "settings); any field you give, in --config or on the command line, wins. Device: CPU in float32 without a CUDA GPU, the "
    "GPU (bf16 where it has it) otherwise. Ctrl-C or SIGTERM stops after the step with a checkpoint (exit 130 / "
    "143; twice: at once); --resume continues."
)


def task_defaults(task: str, given: dict) -> dict:
    """The defaults a run of ``task`` starts from, under what the user gave (``given``): the machine's device
    and precision, then the task's recipe (:func:`oarl.lab.testbed.train.recipe_fields`). Echoed, so the
    user sees each value and where it came from; bf16 or a GPU this machine lacks is refused here."""
    from oarl.lab.testbed.train import recipe_fields
    from oarl.utils.device import check_precision, describe_device, device_flags

    recipe = recipe_fields(task) if task in TASKS else {}  # an unknown task: the parser names it next
    if recipe:
        recipe.setdefault("output_dir", f"runs/train/{task}-{recipe.get('oar_method', 'gradient')}")
    device = device_flags()
    if "use_cpu" in given and given["use_cpu"]:
        device["bf16"] = False  # the user's CPU run: bf16 only where asked (CPU autocast)
    defaults = {**device, **recipe}
    applied = {k: v for k, v in defaults.items() if k not in given}
    final = {**defaults, **given}
    check_precision(bool(final["use_cpu"]), bool(final["bf16"]))
    recipe_used = {k: v for k, v in recipe.items() if k not in given}
    if os.environ.get("RANK", "0") != "0":  # under accelerate launch: one echo, from the first process
        return applied
    if recipe_used:
        shown = ", ".join(f"{k}={v}" for k, v in recipe_used.items())
        print(f"oarl train: recipe {task}: {shown} (from the task)")
    if given:
        print("oarl train: you set: " + ", ".join(f"{k}={v}" for k, v in given.items()))
    print(f"oarl train: device: {describe_device()}; use_cpu={final['use_cpu']}, bf16={final['bf16']}")
    return applied


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
    out = Path(config.output_dir)
    made = new_root(out)
    try:
        return _run(task_args, config, lora_args, out)
    except BaseException:
        remove_if_empty(made)  # a failed run leaves no empty folder behind
        raise


def _run(task_args: TaskArguments, config, lora_args, out: Path) -> int:
    from oarl.integrations.trl.lora import save_merged
    from oarl.integrations.trl.resume import GracefulStop

    ckpt = resume_checkpoint(task_args, config)
    try:
        trainer, held_out = build_trainer(task_args, config, lora_args)
    except (ValueError, FileNotFoundError) as e:  # bad data or settings, found before any step ran
        return usage_error("train", e)
    stop = GracefulStop()
    trainer.add_callback(stop)
    trainer.train(resume_from_checkpoint=ckpt)
    main_process = trainer.accelerator.is_main_process
    if stop.stopped_at is not None:
        if main_process:
            print(
                f"interrupted: checkpoint saved at step {stop.stopped_at} in {out}; continue with: "
                f"{resume_command()}"
            )
        return stop.exit_code
    if not (lora_args is not None and lora_args.use_peft and save_merged(trainer, out / "final")):
        trainer.save_model(str(out / "final"))
    if main_process:
        trainer.processing_class.save_pretrained(str(out / "final"))
        metrics = out / "metrics.jsonl"
        done = f"model in {out / 'final'}" + (f"; metrics in {metrics}" if metrics.is_file() else "")
        if held_out is not None and held_out.last_accuracy is not None:
            print(f"final accuracy {held_out.last_accuracy:.3f}; {done}")
        elif held_out is not None:
            print(done)
        else:
            print(f"{done}; evaluate with: oarl eval --model {out / 'final'} --data DATA")
    return 0


def resume_command() -> str:
    """This command line with ``--resume`` (once): what continues an interrupted run."""
    import shlex

    argv = [a for a in sys.argv[1:] if a not in ("--resume", "--resume=true", "--resume=True")]
    if argv and argv[0] == "train":
        argv = argv[1:]
    return shlex.join(["oarl", "train", *argv, "--resume"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
