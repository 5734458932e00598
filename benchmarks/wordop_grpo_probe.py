"""GRPO (or any arm) from SmolLM2's shipped wordop LoRA warm start: fresh LoRA r=16 q/v on the merged warm
policy, held-out sampled accuracy on 32 problems x 4 samples at T = 1 (docs/real_model.md, "GRPO from it").

    PYTHONPATH=src python benchmarks/wordop_grpo_probe.py checkpoints/wordop-lora-212d42da23fe \
        grpo 30 5e-4 1 1 runs/probe/g30_5e-4        # ADAPTER ARM STEPS LR THREADS BF16 OUT [PROMPTS GENS]
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from peft import LoraConfig

from oarl.lab.testbed.experiment import JsonlWriter, get_arm, run_arm
from oarl.lab.testbed.tasks import get_task_recipe
from oarl.utils.threads import set_threads

adapter, arm, steps, lr, threads, bf16, out = (
    sys.argv[1],
    sys.argv[2],
    int(sys.argv[3]),
    float(sys.argv[4]),
    int(sys.argv[5]),
    sys.argv[6] == "1",
    Path(sys.argv[7]),
)
pps = int(sys.argv[8]) if len(sys.argv) > 8 else 4
gens = int(sys.argv[9]) if len(sys.argv) > 9 else 4
set_threads(threads)
recipe = get_task_recipe("wordop")
task = recipe.make(recipe.config)
rl = replace(
    recipe.rl,
    steps=steps,
    learning_rate=lr,
    prompts_per_step=pps,
    num_generations=gens,
    eval_every=max(1, steps // 3 if steps >= 6 else steps),
)
held = task.problems(32, seed=30_000)
w = JsonlWriter(out / "log.jsonl")
peft = LoraConfig(
    r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
)
t = time.perf_counter()
res = run_arm(
    get_arm(arm),
    adapter,
    task,
    rl,
    held,
    out,
    w,
    seed=0,
    progress=False,
    evaluate_start=True,
    peft_config=peft,
    bf16=bf16,
)
res["wall"] = time.perf_counter() - t
print(json.dumps({k: v for k, v in res.items() if not k.startswith("entropy/")}, default=str), flush=True)
for line in (out / "log.jsonl").read_text().splitlines():
    r = json.loads(line)
    if "sampled_accuracy" in r:
        print("eval", r["step"], r["accuracy"], r["sampled_accuracy"])
