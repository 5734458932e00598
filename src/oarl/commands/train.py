"""Train with GRPO or OAR from a YAML config: ``oarl train --config FILE.yaml [--field value ...]``.

The YAML holds ``OARConfig`` fields (all of TRL's ``GRPOConfig`` plus ``oar_*``) and the task fields below;
command-line flags override it. The demo is one preset (``recipes/demo_arith.yaml``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass
class TaskArguments:
    task: str = field(default="arith", metadata={"help": "the training task (the embedded 'arith')"})
    model_path: str | None = field(
        default=None, metadata={"help": "local model folder; default for arith: the cached SFT warm start"}
    )
    train_size: int = field(default=2000, metadata={"help": "training prompts to generate"})
    eval_size: int = field(default=200, metadata={"help": "held-out problems for greedy accuracy"})
    eval_every: int = field(default=10, metadata={"help": "evaluate every N steps"})
    chain_steps: str = "2"
    distractor_steps: str = "1"
    const_max: int = 9
    value_max: int = 19
    task_seed: int = 0
    cache_dir: str = "runs/cache"


def main(argv: list[str]) -> int:
    from trl import TrlParser

    from oarl.trainer import OARConfig

    parser = TrlParser([TaskArguments, OARConfig], prog="oarl train", description=__doc__.splitlines()[0])
    task_args, config = parser.parse_args_and_config(argv)
    return run(task_args, config)


def run(task_args: TaskArguments, config) -> int:
    from transformers import AutoModelForCausalLM, PrinterCallback

    from oarl.commands.demo import _pair
    from oarl.experiment import HeldOutAccuracy, JsonlWriter, StepProgress
    from oarl.modeling import load_tokenizer
    from oarl.tasks import arith
    from oarl.trainer import OARGRPOTrainer
    from oarl.warmstart import WarmStartConfig, warm_start

    if task_args.task != "arith":
        raise ValueError(f"unknown task {task_args.task!r}; expected 'arith'")
    task = arith.ArithConfig(
        chain_steps=_pair(task_args.chain_steps), distractor_steps=_pair(task_args.distractor_steps),
        const_max=task_args.const_max, value_max=task_args.value_max, seed=task_args.task_seed,
    )  # fmt: skip
    path = task_args.model_path or warm_start(task, WarmStartConfig(), task_args.cache_dir)
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    train = arith.make_dataset(task_args.train_size, replace(task, seed=task.seed + 20_000))
    held_out = arith.generate_problems(task_args.eval_size, replace(task, seed=task.seed + 30_000))
    out = Path(config.output_dir)
    writer = JsonlWriter(out / "metrics.jsonl")
    tag = {"method": config.oar_method, "label": config.oar_method, "seed": config.seed}
    acc = HeldOutAccuracy(writer, tag, tok, held_out, task_args.eval_every, config.max_completion_length)
    trainer = OARGRPOTrainer(
        model=model, reward_funcs=arith.arith_reward, args=config, train_dataset=train, processing_class=tok,
        callbacks=[acc, StepProgress(f"oarl train ({config.oar_method})", True, acc)],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model(str(out / "final"))
    tok.save_pretrained(str(out / "final"))
    print(
        f"final accuracy {acc.last_accuracy:.3f}; model in {out / 'final'}; metrics in {out / 'metrics.jsonl'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
