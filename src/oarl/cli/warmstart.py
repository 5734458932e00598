"""Train (or reuse) the flag task's warm starts, check them on held-out problems, and ship them.

    oarl warmstart --chatter none,some,heavy --ship     # what the shipped checkpoints were made with

For each chatter level: the recipe's SFT warm start (1 torch thread: the shipped procedure), its held-out
greedy and sampled accuracy (the study's 64 held-out problems x 4 samples), and with ``--ship`` a copy in
``src/oarl/testbed/checkpoints/`` (what ``oarl demo`` and ``oarl study`` use before training anything).
``tests/test_warmstart.py`` fails when the task's data no longer matches a shipped checkpoint.

    oarl warmstart --task wordop --threads 1 --ship     # SmolLM2's LoRA adapter (oarl.cli.warmstart_lora)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path


def main(argv: list[str]) -> int:
    from oarl.utils.threads import THREADS_HELP

    p = argparse.ArgumentParser(
        prog="oarl warmstart",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument(
        "--task",
        default="flag",
        choices=("flag", "wordop"),
        help="flag: the tiny model's warm starts; wordop: SmolLM2's LoRA adapter (oarl.cli.warmstart_lora)",
    )
    p.add_argument("--chatter", default="none,some,heavy", help="comma list of chatter levels (flag task)")
    p.add_argument("--cache-dir", default="runs/cache")
    p.add_argument("--ship", action="store_true", help="copy each checkpoint into the package")
    p.add_argument("--min-greedy", type=float, default=0.9, help="held-out greedy accuracy to ship")
    p.add_argument("--eval-problems", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    from oarl.cli import warmstart_lora

    warmstart_lora.add_arguments(p)
    args = p.parse_args(argv)
    if args.task == "wordop":
        return warmstart_lora.run(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM

    from oarl.testbed.evaluate import evaluate_policy
    from oarl.testbed.tasks import get_task_recipe
    from oarl.testbed.tasks.flag import CHATTER_LEVELS
    from oarl.testbed.warmstart import SHIPPED_DIR, warm_start
    from oarl.utils.checkpoint import load_tokenizer
    from oarl.utils.threads import set_threads

    recipe = get_task_recipe("flag")
    levels = [c.strip() for c in args.chatter.split(",") if c.strip()]
    for level in levels:
        if level not in CHATTER_LEVELS:
            print(f"oarl warmstart: unknown chatter {level!r} ({sorted(CHATTER_LEVELS)})", file=sys.stderr)
            return 2
    failed = 0
    for level in levels:
        task = recipe.make(replace(recipe.config, chatter=level))
        ckpt = Path(warm_start(task, recipe.warm_start, args.cache_dir, threads=args.threads))
        set_threads(args.threads)
        model = AutoModelForCausalLM.from_pretrained(ckpt)
        held_out = task.problems(args.eval_problems, seed=30_000)
        m = evaluate_policy(
            model,
            load_tokenizer(ckpt),
            task,
            held_out,
            4,
            recipe.rl.max_completion_length,
            recipe.rl.temperature,
            seed=0,
        )
        check = {
            "greedy": m["accuracy"],
            "sampled": m["sampled_accuracy"],
            "eval_problems": args.eval_problems,
        }
        print(
            f"chatter={level}: {ckpt.name}  held-out greedy {check['greedy']:.3f}  sampled {check['sampled']:.3f}"
        )
        meta_path = ckpt / "oarl_warmstart.json"
        if ckpt.parent != SHIPPED_DIR:  # shipped checkpoints are read-only
            meta = json.loads(meta_path.read_text())
            meta["held_out"] = check
            meta_path.write_text(json.dumps(meta, default=str))
        if args.ship and ckpt.parent != SHIPPED_DIR:
            if check["greedy"] < args.min_greedy:
                print(f"  not shipped: greedy {check['greedy']:.3f} < --min-greedy {args.min_greedy}")
                failed += 1
                continue
            dest = SHIPPED_DIR / ckpt.name
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ckpt, dest, ignore=shutil.ignore_patterns("*.partial", "trainer"))
            print(f"  shipped: {dest}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
