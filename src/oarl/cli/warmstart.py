"""Train (or reuse) the flag task's warm starts, check them on held-out problems, and ship them.

    oarl warmstart --chatter none,some,heavy --ship     # what the shipped checkpoints were made with

For each chatter level: the recipe's SFT warm start (1 torch thread: the shipped procedure), its held-out
greedy and sampled accuracy (the study's 64 held-out problems x 4 samples), and with ``--ship`` a copy in
the repository's ``checkpoints/`` (what ``oarl demo`` and ``oarl study`` use before training anything).
``tests/test_warmstart.py`` fails when the task's data no longer matches a shipped checkpoint.

    oarl warmstart --task wordop --ship      # SmolLM2's LoRA adapter: what the shipped one was made with (2 threads, ~15 min)
    oarl warmstart --task wordop --chatter heavy --threads 2     # the same with 3 chatter sentences a completion
    oarl warmstart --task wordop --fidelity 0.55 --threads 2     # SFT data that writes the right operation 55% of the time
    oarl warmstart --task wordop2 --threads 2    # two operations a problem: two decisions a completion

``--task wordop`` (or ``wordop2``) trains the LoRA SFT warm start of SmolLM2-135M on that word-problem task
(or reuses ``--cache-dir``'s), measures the held-out gate (sampled at the RL temperature: format >= 0.95,
execution given the chosen operations >= 0.90, right choice in [0.55, 0.75]; wordop2's choice counts
each of its two decisions) and with ``--ship`` copies adapter_model.safetensors, adapter_config.json and
oarl_warmstart.json (task identity, data fingerprint, the gate's numbers) into the repository's
``checkpoints/``, refusing one that misses it. ``--time-bf16`` first times one forward + backward of a batch
in float32 and under bfloat16 autocast.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from oarl.cli._args import names

#: What Ctrl-C outside a clean stop point leaves, and how to go on (printed by ``oarl``; see
#: :func:`oarl.utils.interrupt.interrupted_message`).
RESUME_HINT = "a finished SFT is cached and reused: {command}"
#: The tasks whose warm start is SmolLM2's LoRA adapter (:func:`run_lora`; the rest: the tiny model's, :func:`run`).
LORA_TASKS = ("wordop", "wordop2")


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
        choices=("flag", *LORA_TASKS),
        help="flag: the tiny model's warm starts; wordop: SmolLM2's LoRA adapter; wordop2: the same on two "
        "operations a problem",
    )
    p.add_argument(
        "--chatter",
        default=None,
        help="comma list of chatter levels (default: none,some,heavy for flag; none for wordop, wordop2)",
    )
    p.add_argument(
        "--fidelity",
        type=float,
        default=None,
        help="wordop, wordop2: P(the SFT data writes an operation as the question names it) (default: the "
        "task's 0.65)",
    )
    p.add_argument("--cache-dir", default="runs/cache")
    p.add_argument(
        "--ship",
        action="store_true",
        help="copy each checkpoint into the repository's checkpoints/ (a source checkout)",
    )
    p.add_argument("--min-greedy", type=float, default=0.9, help="held-out greedy accuracy to ship")
    p.add_argument("--eval-problems", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    add_lora_arguments(p)
    args = p.parse_args(argv)
    if args.fidelity is not None and args.task not in LORA_TASKS:  # the flag task has no fidelity
        p.error("--fidelity applies to --task wordop2 or --task wordop only")
    if args.fidelity is not None and not 0.0 <= args.fidelity <= 1.0:
        p.error(f"--fidelity must be in [0, 1], got {args.fidelity}")
    if args.ship:  # before minutes of training: shipping needs a source checkout
        from oarl.lab.testbed.warmstart import shipping_dir

        try:
            shipping_dir()
        except FileNotFoundError as e:
            print(f"oarl warmstart: error: {e}", file=sys.stderr)
            return 2
    if args.task in LORA_TASKS:
        from oarl.lab.testbed.tasks.wordop import CHATTER_LEVELS  # wordop2's too

        levels = chatter_levels(args.chatter or "none", CHATTER_LEVELS)
        return 2 if levels is None else max(run_lora(args, level) for level in levels)
    return run(args)


def chatter_levels(spec: str, known) -> list[str] | None:
    """The comma list ``spec`` of chatter levels; None, after naming the first unknown one, if any is not in
    ``known`` (checked for every level before anything trains)."""
    levels = names(spec)
    unknown = [level for level in levels if level not in known]
    if unknown:
        print(f"oarl warmstart: unknown chatter {unknown[0]!r} ({sorted(known)})", file=sys.stderr)
        return None
    return levels


def run(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM

    from oarl.lab.testbed.evaluate import evaluate_policy
    from oarl.lab.testbed.tasks import get_task_recipe
    from oarl.lab.testbed.tasks.flag import CHATTER_LEVELS
    from oarl.lab.testbed.warmstart import SHIPPED_DIR, warm_start
    from oarl.utils.checkpoint import load_tokenizer
    from oarl.utils.threads import set_threads

    recipe = get_task_recipe("flag")
    levels = chatter_levels(args.chatter or "none,some,heavy", CHATTER_LEVELS)
    if levels is None:
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


def add_lora_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``--task wordop`` and ``--task wordop2``."""
    p.add_argument("--steps", type=int, default=None, help="SFT steps (default: the recipe's)")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bfloat16 autocast)")
    p.add_argument("--time-bf16", action="store_true", help="time a step in float32 and bfloat16 first")
    p.add_argument("--eval-samples", type=int, default=4, help="samples per held-out problem for the gate")


def run_lora(args: argparse.Namespace, chatter: str = "none") -> int:
    """``--task wordop`` / ``wordop2``: the LoRA SFT warm start of SmolLM2-135M on that word-problem task at one
    ``chatter`` level (module docstring)."""
    import torch

    from oarl.lab.testbed.lora_gate import GATE, gate_failures, gate_metrics
    from oarl.lab.testbed.lora_warmstart import (
        LoraSFTConfig,
        adapter_name,
        data_fingerprint,
        sft_batch,
        time_step,
        train_adapter,
    )
    from oarl.lab.testbed.tasks import get_task_recipe
    from oarl.lab.testbed.warmstart import SHIPPED_DIR
    from oarl.utils.threads import set_threads

    set_threads(args.threads)
    recipe = get_task_recipe(args.task)
    fidelity = recipe.config.fidelity if args.fidelity is None else args.fidelity
    task = recipe.make(replace(recipe.config, chatter=chatter, fidelity=fidelity))
    cfg = LoraSFTConfig()
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.no_bf16:
        cfg = replace(cfg, bf16=False)
    name = adapter_name(task, cfg)
    out = Path(args.cache_dir) / name
    say = lambda m: print(m, flush=True)  # noqa: E731
    held_out = task.problems(args.eval_problems, seed=30_000)
    temperature = recipe.rl.temperature

    # chatter (and a second operation) makes completions longer: the gate must not truncate them
    budget = task.completion_budget[chatter]

    def evaluate(model, step: int) -> dict:
        start = time.perf_counter()
        m = gate_metrics(model, tok, task, held_out, args.eval_samples, temperature, max_new_tokens=budget)
        say(
            f"  step {step}: held-out "
            + " ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float))
            + f" ({time.perf_counter() - start:.0f} s)"
        )
        return m

    timing = {}
    if args.time_bf16:
        from oarl.lab.testbed.lora_warmstart import load_base

        base, tok = load_base(cfg.model)
        from peft import get_peft_model

        from oarl.integrations.trl.lora import peft_lora_config

        model = get_peft_model(base, peft_lora_config(cfg.rank, cfg.alpha, 0.0, list(cfg.target_modules)))
        batch = sft_batch(tok, list(task.sft_dataset(cfg.batch_size, seed=10_000)))
        timing = {
            "fp32_s": time_step(model, batch, False),
            "bf16_s": time_step(model, batch, True),
            "rows": cfg.batch_size,
            "threads": torch.get_num_threads(),
        }
        say(
            f"forward+backward of {cfg.batch_size} rows: float32 {timing['fp32_s']:.2f} s, "
            f"bfloat16 autocast {timing['bf16_s']:.2f} s ({timing['threads']} threads)"
        )
        del model, base
    if (out / "oarl_warmstart.json").exists():
        say(f"reusing {out}")
        from oarl.lab.testbed.lora_warmstart import load_warm_policy

        model, tok = load_warm_policy(out, merge=False)
        meta = json.loads((out / "oarl_warmstart.json").read_text())
    else:
        from transformers import AutoTokenizer

        from oarl.lab.models.resolve import resolve_model

        tok = AutoTokenizer.from_pretrained(resolve_model(cfg.model))
        start = time.perf_counter()
        model, tok = train_adapter(task, cfg, out, say, eval_fn=evaluate, eval_every=max(1, cfg.steps // 2))
        meta = {
            "task": task.identity(),
            "sft": asdict(cfg),
            "data": data_fingerprint(task),
            "name": name,
            "sft_seconds": time.perf_counter() - start,
            "threads": args.threads,
            "torch": torch.__version__,
        }
        if timing:
            meta["timing"] = timing
    m = evaluate(model, cfg.steps)
    meta["held_out"] = {**m, "eval_problems": args.eval_problems, "gate": GATE, "max_new_tokens": budget}
    (out / "oarl_warmstart.json").write_text(json.dumps(meta, indent=1, default=str))
    failures = gate_failures(m)
    say(f"{name}: " + ("passes the gate" if not failures else "misses the gate: " + "; ".join(failures)))
    if args.ship:
        if failures:
            say("  not shipped")
            return 1
        dest = SHIPPED_DIR / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for f in ("adapter_model.safetensors", "adapter_config.json", "oarl_warmstart.json"):
            shutil.copy2(out / f, dest / f)
        conf = json.loads((dest / "adapter_config.json").read_text())
        conf["base_model_name_or_path"] = cfg.model  # a short name, not this machine's cache path
        (dest / "adapter_config.json").write_text(json.dumps(conf, indent=2, sort_keys=True))
        say(f"  shipped: {dest}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
