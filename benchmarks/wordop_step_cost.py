"""Seconds per RL step of each credit arm beside GRPO on SmolLM2's word-operation task, float32 vs bfloat16.

The study's shape: fresh LoRA r 16 (q/v) on the merged wordop warm start, 4 prompts x 4 samples, <= 32 new
tokens, one torch thread. Arms run in round-robin rounds (every arm once per round and precision, the same RL
seed per round) so a drifting machine load hits all alike; the step time is TRL's ``step_time`` (sampling,
reward, OAR scoring, forward + backward, optimiser), median over the measured steps with each run's first step
dropped. Also: seconds to sample one step's 16 completions with ``generate`` (dynamic vs static KV cache), so
the sampling share of a step is visible.

    PYTHONPATH=src python benchmarks/wordop_step_cost.py --out benchmarks/results/wordop_step_cost.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from oarl.lab.math.evaluation import generate_completions
from oarl.lab.testbed.experiment import JsonlWriter, get_arm, load_policy, run_arm
from oarl.lab.testbed.tasks import get_task_recipe
from oarl.utils.autocast import autocast
from oarl.utils.threads import machine_description, set_threads

ARMS = "grpo,oar_g,oar_p,perturbation_linear,info_gain,tree,entropy,oracle"


def arm_step_times(adapter: str, task, rl, arms: list[str], precisions: list[bool], rounds: int) -> dict:
    """``{precision: {arm: [step seconds...]}}`` and scorer seconds, from round-robin runs of ``rl.steps``."""
    held = task.problems(2, seed=30_000)  # run_arm evaluates once at the end: keep it small
    out: dict = {
        p: {a: {"step": [], "scorer": []} for a in arms}
        for p in ("bf16" if b else "fp32" for b in precisions)
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for bf16 in precisions:
                key = "bf16" if bf16 else "fp32"
                for arm in arms:
                    log = Path(tmp) / f"{arm}-{key}-{r}.jsonl"
                    run_arm(get_arm(arm), adapter, task, replace(rl, bf16=bf16), held, Path(tmp), JsonlWriter(log),
                            seed=r, progress=False)  # fmt: skip
                    lines = [json.loads(x) for x in log.read_text().splitlines()]
                    steps = [x for x in lines if "step_time" in x][1:]  # the first step carries warm-up
                    out[key][arm]["step"] += [x["step_time"] for x in steps]
                    out[key][arm]["scorer"] += [x.get("oar/scorer_seconds") or 0.0 for x in steps]
                    print(
                        f"round {r} {key} {arm}: {statistics.median(out[key][arm]['step']):.2f} s", flush=True
                    )
    return out


def sampling_times(adapter: str, task, rl, reps: int) -> dict:
    """Seconds to sample one step's completions (prompts x generations) per precision and KV cache."""
    model, tok = load_policy(adapter)
    prompts = [
        p.prompt for p in task.problems(rl.prompts_per_step, seed=20_000) for _ in range(rl.num_generations)
    ]
    res = {}
    for bf16 in (False, True):
        for cache in ("dynamic", "static"):
            model.generation_config.cache_implementation = "static" if cache == "static" else None
            times = []
            key = f"{'bf16' if bf16 else 'fp32'}/{cache}"
            try:
                for i in range(reps + 1):
                    torch.manual_seed(i)
                    t = time.perf_counter()
                    with autocast(bf16):
                        generate_completions(model, tok, prompts, rl.max_completion_length, do_sample=True)
                    times.append(time.perf_counter() - t)
            except (
                RuntimeError
            ) as e:  # a static cache is allocated in the weights' dtype, autocast writes bf16
                res[key] = f"fails: {str(e).splitlines()[0][:160]}"
                print(f"sampling {key}: {res[key]}", flush=True)
                continue
            res[key] = statistics.median(times[1:])
            print(f"sampling {key}: {res[key]:.2f} s", flush=True)
    model.generation_config.cache_implementation = None
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arms", default=ARMS)
    p.add_argument("--steps", type=int, default=4, help="steps per run (the first is dropped)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--precisions", default="bf16,fp32")
    p.add_argument("--sampling-reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default="", help="what else ran on the machine (said in the JSON)")
    p.add_argument("--out", default="benchmarks/results/wordop_step_cost.json")
    a = p.parse_args()
    set_threads(a.threads)
    recipe = get_task_recipe("wordop")
    task = recipe.make(recipe.config)
    adapter = recipe.checkpoint(task, recipe.warm_start, "runs/cache")
    rl = replace(recipe.rl, steps=a.steps, eval_every=10**6, eval_samples=0)
    arms = [x for x in a.arms.split(",") if x]
    precisions = [x == "bf16" for x in a.precisions.split(",") if x]
    t0 = time.perf_counter()
    sampling = sampling_times(adapter, task, rl, a.sampling_reps) if a.sampling_reps else {}
    raw = arm_step_times(adapter, task, rl, arms, precisions, a.rounds)
    table = {}
    for key, per in raw.items():
        base = statistics.median(per["grpo"]["step"]) if "grpo" in per else None
        table[key] = {
            arm: {
                "step_s": statistics.median(v["step"]),
                "scorer_s": statistics.median(v["scorer"]),
                "ratio_to_grpo": statistics.median(v["step"]) / base if base else None,
                "n": len(v["step"]),
            }
            for arm, v in per.items()
        }
    if {"bf16", "fp32"} <= table.keys():
        table["fp32_over_bf16"] = {
            arm: table["fp32"][arm]["step_s"] / table["bf16"][arm]["step_s"] for arm in arms
        }
    result = {
        "shape": {"rows": rl.prompts_per_step * rl.num_generations, "max_new_tokens": rl.max_completion_length,
                  "lora_rank": rl.lora_rank, "threads": a.threads, "steps": a.steps, "rounds": a.rounds},
        "machine": {"description": machine_description(), "torch": torch.__version__, "note": a.note},
        "sampling_s": sampling, "steps": table, "raw": raw, "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    for key in ("bf16", "fp32"):
        if key in table:
            print(
                key, {arm: f"{v['step_s']:.2f}s x{v['ratio_to_grpo']:.2f}" for arm, v in table[key].items()}
            )
    print(f"wrote {a.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
