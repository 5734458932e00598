"""What tips the flag warm start: SFT seed and torch thread count, measured on held-out execution.

Trains the demo's warm start (flag task, chatter ``some``, the recipe's 1500 SFT steps) once per
(seed, threads) variant and evaluates it on the study's held-out problems: greedy accuracy (does the model
execute reliably?) and sampled accuracy at the RL temperature (what RL starts from). One JSON line per
variant is appended to ``--out`` as it finishes, so an interrupted run keeps what it measured.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/warmstart_robustness.py --variants 0:1,0:2,1:1,2:1 \
        --out benchmarks/results/warmstart_robustness.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from oarl.lab.testbed.evaluate import evaluate_policy
from oarl.lab.testbed.tasks import get_task_recipe
from oarl.lab.testbed.warmstart import warm_start
from oarl.utils.atomic import append_line
from oarl.utils.checkpoint import load_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="0:1,0:2,1:1,2:1", help="comma list of SEED:THREADS")
    ap.add_argument("--chatter", default="some")
    ap.add_argument("--steps", type=int, default=-1, help="SFT steps (-1: the recipe's)")
    ap.add_argument("--eval-problems", type=int, default=64)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--cache-dir", default="runs/cache")
    ap.add_argument("--out", default="benchmarks/results/warmstart_robustness.jsonl")
    a = ap.parse_args()
    recipe = get_task_recipe("flag")
    task = recipe.make(replace(recipe.config, chatter=a.chatter))
    held_out = task.problems(a.eval_problems, seed=30_000)  # the study's held-out set
    for variant in a.variants.split(","):
        seed, threads = (int(x) for x in variant.split(":"))
        ws = replace(recipe.warm_start, seed=seed)
        if a.steps > 0:
            ws = replace(ws, max_steps=a.steps)
        with tempfile.TemporaryDirectory() as tmp:
            # one thread is the shipped procedure: keep that checkpoint in the cache (oarl warmstart reuses it)
            t0 = time.perf_counter()
            ckpt = warm_start(task, ws, a.cache_dir if threads == 1 else tmp, progress=False, threads=threads)
            seconds = time.perf_counter() - t0
            torch.set_num_threads(1)
            model = AutoModelForCausalLM.from_pretrained(ckpt)
            m = evaluate_policy(model, load_tokenizer(ckpt), task, held_out, a.samples,
                                recipe.rl.max_completion_length, recipe.rl.temperature, seed=0)  # fmt: skip
        rec = {"seed": seed, "threads": threads, "chatter": a.chatter, "sft_seconds": round(seconds, 1),
               "greedy": m["accuracy"], "sampled": m["sampled_accuracy"], "sft": asdict(ws)}  # fmt: skip
        print(
            json.dumps({k: rec[k] for k in ("seed", "threads", "sft_seconds", "greedy", "sampled")}),
            flush=True,
        )
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        append_line(Path(a.out), json.dumps(rec))


if __name__ == "__main__":
    main()
