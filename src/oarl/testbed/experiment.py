"""One RL run on the embedded task (GRPO or an OAR variant), with held-out accuracy and JSONL metrics."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PrinterCallback, TrainerCallback

from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer
from oarl.math.evaluation import accuracy
from oarl.testbed.tasks import arith
from oarl.utils.atomic import append_line, trim_jsonl
from oarl.utils.checkpoint import load_tokenizer

METHOD_LABELS = {
    "none": "GRPO",
    "gradient": "OAR-G",
    "perturbation": "OAR-P",
    "entropy": "entropy",
    "random": "random",
}


@dataclass
class RLSettings:
    """The RL budget shared by every method of a comparison."""

    steps: int = 60
    prompts_per_step: int = 8
    num_generations: int = 8
    learning_rate: float = 1e-4
    max_completion_length: int = 48
    temperature: float = 1.0
    probe: str = "as_mean"
    probe_warmup_steps: int = 0
    tau: float = 0.4
    beta: float = 2.0
    eval_every: int = 10
    noise_std: float = 1e-3  # OAR-G embedding noise
    eval_samples: int = 0  # sampled completions per held-out problem (0: greedy accuracy only)


class JsonlWriter:
    """Appends one JSON object per line in a single write, so an interrupted run keeps only whole lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        append_line(self.path, json.dumps(record))

    def trim_after(self, step: int) -> int:
        """Drop records logged after global ``step`` (and any broken line): a resumed run continues from it.

        Returns the number of lines dropped.
        """
        return trim_jsonl(self.path, lambda r: not isinstance(r.get("step"), int) or r["step"] <= step)


class StepProgress(TrainerCallback):
    """One tqdm bar per run with the numbers worth watching (replaces the Trainer's raw log dicts)."""

    KEYS = {
        "loss": "loss",
        "mean_token_accuracy": "tok_acc",
        "reward": "reward",
        "oar/ess_ratio": "ess",
        "entropy": "H",
    }

    def __init__(self, desc: str, enabled: bool = True, accuracy: HeldOutAccuracy | None = None) -> None:
        self.desc, self.enabled, self.accuracy, self.bar = desc, enabled, accuracy, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, desc=self.desc, disable=not self.enabled, dynamic_ncols=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs or "loss" not in logs:
            return
        post = {
            short: f"{logs[k]:.3f}" for k, short in self.KEYS.items() if isinstance(logs.get(k), (int, float))
        }
        if self.accuracy is not None and self.accuracy.last_accuracy is not None:
            post["acc"] = f"{self.accuracy.last_accuracy:.3f}"
        self.bar.set_postfix(post, refresh=False)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def sampled_accuracy(
    model, tokenizer, problems: list, samples: int, max_new_tokens: int, temperature: float, step: int
) -> float:
    """Mean reward of ``samples`` sampled completions per problem: what RL optimises (greedy may lag).

    Sampling runs on a forked RNG seeded by the step, so it neither shifts the training's random stream
    nor differs between methods for the same weights.
    """
    prompts = [p.prompt for p in problems for _ in range(samples)]
    answers = [p.answer for p in problems for _ in range(samples)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10_000 + step)
        acc, _ = accuracy(
            model, tokenizer, prompts, arith.arith_reward, max_new_tokens, do_sample=True,
            temperature=temperature, answer=answers,
        )  # fmt: skip
    return acc


class HeldOutAccuracy(TrainerCallback):
    """Greedy held-out accuracy every ``every`` steps and at the end; every log line goes to the JSONL too."""

    def __init__(
        self, writer: JsonlWriter, tag: dict, tokenizer, problems: list, every: int, max_new_tokens: int,
        samples: int = 0, temperature: float = 1.0,
    ):  # fmt: skip
        self.writer, self.tag, self.tok, self.problems = writer, tag, tokenizer, problems
        self.every, self.max_new_tokens = every, max_new_tokens
        self.samples, self.temperature = samples, temperature
        self.last_accuracy: float | None = None
        self.last_sampled_accuracy: float | None = None

    def evaluate(self, model, step: int) -> float:
        prompts = [p.prompt for p in self.problems]
        acc, _ = accuracy(
            model,
            self.tok,
            prompts,
            arith.arith_reward,
            self.max_new_tokens,
            answer=[p.answer for p in self.problems],
        )
        self.last_accuracy = acc
        record = {**self.tag, "step": step, "accuracy": acc}
        if self.samples:
            self.last_sampled_accuracy = sampled_accuracy(
                model, self.tok, self.problems, self.samples, self.max_new_tokens, self.temperature, step
            )
            record["sampled_accuracy"] = self.last_sampled_accuracy
        self.writer.write(record)
        return acc

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.evaluate(model, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.writer.write({**self.tag, "step": state.global_step, **logs})


def run_rl(
    method: str,
    model_path: str | Path,
    task: arith.ArithConfig,
    rl: RLSettings,
    eval_problems: list,
    out_dir: Path,
    writer: JsonlWriter,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train from ``model_path`` with ``method`` for ``rl.steps`` steps; return a summary dict."""
    tok = load_tokenizer(model_path)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    from dataclasses import replace

    n_prompts = rl.steps * rl.prompts_per_step
    train = arith.make_dataset(n_prompts, replace(task, seed=task.seed + 20_000 + seed))
    args = OARConfig(
        output_dir=str(out_dir / f"{method}-seed{seed}"),
        oar_method=method,
        oar_probe=rl.probe,
        oar_probe_warmup_steps=rl.probe_warmup_steps,
        oar_tau=rl.tau,
        oar_beta=rl.beta,
        oar_noise_std=rl.noise_std,
        use_cpu=True,
        bf16=False,
        report_to="none",
        max_steps=rl.steps,
        per_device_train_batch_size=rl.prompts_per_step * rl.num_generations,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        learning_rate=rl.learning_rate,
        lr_scheduler_type="constant",
        logging_steps=1,
        gradient_checkpointing=False,
        save_strategy="no",
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
        log_completions=False,
    )
    tag = {"method": method, "label": METHOD_LABELS.get(method, method), "seed": seed}
    callback = HeldOutAccuracy(
        writer,
        tag,
        tok,
        eval_problems,
        rl.eval_every,
        rl.max_completion_length,
        rl.eval_samples,
        rl.temperature,
    )
    trainer = OARGRPOTrainer(
        model=model, reward_funcs=arith.arith_reward, args=args, train_dataset=train, processing_class=tok,
        callbacks=[callback, StepProgress(tag["label"] + f" seed {seed}", progress, callback)],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "loss" in h]

    def mean_of(key: str) -> float:
        vals = [h[key] for h in logs if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
        return sum(vals) / len(vals) if vals else float("nan")

    return {
        **tag,
        "steps": trainer.state.global_step,
        "seconds": seconds,
        "accuracy_after": callback.last_accuracy,
        "sampled_accuracy_after": callback.last_sampled_accuracy,
        "ess_ratio": mean_of("oar/ess_ratio"),
        "top10_adv_share": mean_of("oar/top10_adv_share"),
        "scorer_seconds": mean_of("oar/scorer_seconds"),
        "reward": mean_of("reward"),
        "model": trainer.model,
        "tokenizer": tok,
    }
