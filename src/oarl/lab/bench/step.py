"""Training-step overhead of OAR vs GRPO: the same trainer, model, batch and seed, one method at a time.

Methods run in round-robin rounds so slow drifts of a noisy machine hit every method alike; the reported
step time is the median over all measured steps (the first step of each run, with its warm-up, is dropped).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from transformers import TrainerCallback

from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer
from oarl.lab.testbed.tasks import arith
from oarl.utils.checkpoint import load_tokenizer


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t0)


def step_times(
    model_path: str | Path,
    methods: tuple[str, ...] = ("none", "gradient", "perturbation", "perturbation_linear"),
    steps: int = 6,
    rounds: int = 2,
    prompts_per_step: int = 8,
    num_generations: int = 8,
    max_completion_length: int = 48,
    seed: int = 0,
) -> dict:
    """Median step seconds per method, scorer seconds, and completions scored in zero-advantage groups."""
    from dataclasses import replace

    from transformers import AutoModelForCausalLM, PrinterCallback

    tok = load_tokenizer(model_path)
    data = arith.make_dataset(steps * prompts_per_step, replace(arith.ArithConfig(), seed=12_345))
    per: dict[str, dict] = {
        m: {"steps": [], "scorer": [], "zero_adv_scored": 0, "scored": 0.0} for m in methods
    }
    for r in range(rounds):
        for method in methods:
            args = OARConfig(
                output_dir=f"/tmp/oarl-bench/{method}-{r}", oar_method=method, use_cpu=True, bf16=False,
                report_to="none", max_steps=steps, per_device_train_batch_size=prompts_per_step * num_generations,
                num_generations=num_generations, max_completion_length=max_completion_length, learning_rate=1e-4,
                logging_steps=1, gradient_checkpointing=False, save_strategy="no", seed=seed, disable_tqdm=True,
            )  # fmt: skip
            timer = StepTimer()
            trainer = OARGRPOTrainer(
                model=AutoModelForCausalLM.from_pretrained(model_path), reward_funcs=arith.arith_reward, args=args,
                train_dataset=data, processing_class=tok, callbacks=[timer],
            )  # fmt: skip
            trainer.remove_callback(PrinterCallback)
            trainer.train()
            logs = [h for h in trainer.state.log_history if "loss" in h]
            per[method]["steps"] += timer.times[1:]
            per[method]["scorer"] += [h.get("oar/scorer_seconds") or 0.0 for h in logs[1:]]
            per[method]["zero_adv_scored"] += int(sum(h.get("oar/zero_adv_scored") or 0 for h in logs))
    out = {}
    for method, v in per.items():
        out[method] = {
            "step_seconds": statistics.median(v["steps"]),
            "scorer_seconds": statistics.median(v["scorer"]) if v["scorer"] else 0.0,
            "zero_adv_scored": v["zero_adv_scored"],
            "n_steps": len(v["steps"]),
        }
    base = out.get("none", {}).get("step_seconds")
    for method in out:
        out[method]["ratio_vs_grpo"] = out[method]["step_seconds"] / base if base else float("nan")
    return out
