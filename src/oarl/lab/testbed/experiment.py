"""One RL run of one arm (GRPO, an OAR scorer, a baseline credit) on a testbed task, with held-out metrics in JSONL.

An *arm* is a way of assigning token credit: an ``oar_method`` of :class:`OARGRPOTrainer` (``none`` = GRPO, or
any scorer registered in ``oarl.core.scorers.SCORERS``) plus, for TRL's own baseline, extra ``GRPOConfig``
fields. Every arm of a comparison gets the same :class:`RLSettings` (budget, learning rate, seeds).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PrinterCallback, TrainerCallback

from oarl.batch.settings import method_label, methods
from oarl.core.scorers import SCORERS
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer, config_fields
from oarl.lab.math.evaluation import accuracy
from oarl.lab.testbed.evaluate import evaluate_policy
from oarl.lab.testbed.lora_warmstart import load_warm_policy
from oarl.lab.testbed.progress import StepProgress
from oarl.lab.testbed.settings import RUN_FIELDS, RLSettings, check_trl_fields  # noqa: F401  (re-exported)
from oarl.lab.testbed.tasks import arith
from oarl.lab.testbed.tasks.base import decision_labeler, rl_dataset
from oarl.utils.atomic import append_line, trim_jsonl
from oarl.utils.autocast import autocast
from oarl.utils.checkpoint import load_tokenizer


@dataclass(frozen=True)
class Arm:
    """A credit-assignment arm: the trainer's ``oar_method``, any extra ``GRPOConfig`` fields, and the scorer's
    options, from ``scorer_options(tokenizer, rl)`` when they depend on the run (a delimiter's token id, the
    completion budget). ``role_key`` names its scorer in the role-weight JSON (``benchmarks/role_weights_credit.py``)
    where those options differ from the scorer's defaults."""

    name: str
    label: str
    oar_method: str
    trl_fields: tuple[tuple[str, Any], ...] = ()
    scorer_options: Callable[[Any, RLSettings], dict] | None = None
    role_key: str | None = None

    @property
    def role_name(self) -> str:
        """This arm's scorer's name in a role-weight JSON: ``role_key``, else ``oar_method``."""
        return self.role_key or self.oar_method

    def __post_init__(self) -> None:
        check_trl_fields(dict(self.trl_fields), f"arm {self.name!r}'s trl_fields")


def per_step_resampling(tokenizer, rl: RLSettings) -> dict:
    """VinePPO as the study runs it: k = 4 continuations of the whole remaining budget from the end of every
    ``;``-delimited step (the testbed's reasoning steps), so a continuation is never cut short."""
    return {
        "k": 4,
        "max_new_tokens": rl.max_completion_length,
        "step_token_ids": (tokenizer.convert_tokens_to_ids(";"),),
    }


#: The arms of the study (issue "the proof"): plain GRPO, OAR-G, OAR-P, our entropy weighting through the same
#: gate, TRL's built-in top-20%-entropy token mask, random scores through the gate (the control) and oracle
#: credit on the known decisive tokens (the ceiling).
ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm("grpo", "GRPO", "none"),
        Arm("oar_g", "OAR-G", "gradient"),
        Arm("oar_p", "OAR-P", "perturbation"),
        Arm("entropy", "entropy (gated)", "entropy"),
        Arm("trl_entropy", "TRL top-entropy 20%", "none", (("top_entropy_quantile", 0.2),)),
        Arm("random", "random (gated)", "random"),
        Arm("oracle", "oracle", "oracle"),
        Arm("resample", "Resample (per step)", "resample", (), per_step_resampling, role_key="resample_step"),
    )
}


def get_arm(name: str) -> Arm:
    """An arm of :data:`ARMS`, or any ``oar_method`` (every registered scorer is an arm without more code)."""
    if name in ARMS:
        return ARMS[name]
    if name in methods():
        return Arm(name, method_label(name), name)
    raise ValueError(f"unknown arm {name!r}; expected one of {sorted(ARMS)} or an oar_method {methods()}")


class JsonlWriter:
    """Appends one JSON object per line in a single write, so an interrupted run keeps only whole lines."""

    def __init__(self, path: Path) -> None:
        self.path = path  # its folder is made at the first write: a run that fails before leaves none

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_line(self.path, json.dumps(record))

    def trim_after(self, step: int) -> int:
        """Drop records logged after global ``step`` (and any broken line): a resumed run continues from it.

        Returns the number of lines dropped.
        """
        return trim_jsonl(self.path, lambda r: not isinstance(r.get("step"), int) or r["step"] <= step)


def sampled_accuracy(
    model,
    tokenizer,
    problems: list,
    samples: int,
    max_new_tokens: int,
    temperature: float,
    step: int,
    reward: Callable[..., list[float]] = arith.arith_reward,
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
            model,
            tokenizer,
            prompts,
            reward,
            max_new_tokens,
            do_sample=True,
            temperature=temperature,
            answer=answers,
        )
    return acc


class HeldOutAccuracy(TrainerCallback):
    """Greedy held-out accuracy every ``every`` steps and at the end; every log line goes to the JSONL too.

    ``reward(prompts, completions, answer)`` grades (default: the arithmetic task's; a testbed task's
    ``task.reward``)."""

    def __init__(
        self,
        writer: JsonlWriter,
        tag: dict,
        tokenizer,
        problems: list,
        every: int,
        max_new_tokens: int,
        samples: int = 0,
        temperature: float = 1.0,
        reward: Callable[..., list[float]] = arith.arith_reward,
    ):
        self.writer, self.tag, self.tok, self.problems = writer, tag, tokenizer, problems
        self.every, self.max_new_tokens = every, max_new_tokens
        self.samples, self.temperature, self.reward = samples, temperature, reward
        self.last_accuracy: float | None = None
        self.last_sampled_accuracy: float | None = None

    def evaluate(self, model, step: int) -> float:
        prompts = [p.prompt for p in self.problems]
        acc, _ = accuracy(
            model,
            self.tok,
            prompts,
            self.reward,
            self.max_new_tokens,
            answer=[p.answer for p in self.problems],
        )
        self.last_accuracy = acc
        record = {**self.tag, "step": step, "accuracy": acc}
        if self.samples:
            self.last_sampled_accuracy = sampled_accuracy(
                model,
                self.tok,
                self.problems,
                self.samples,
                self.max_new_tokens,
                self.temperature,
                step,
                self.reward,
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


class PolicyEval(TrainerCallback):
    """:func:`oarl.lab.testbed.evaluate.evaluate_policy` every ``every`` steps and at the end; logs go to the JSONL."""

    def __init__(self, writer: JsonlWriter, tag: dict, tokenizer, task, problems: list, rl: RLSettings):
        self.writer, self.tag, self.tok, self.task, self.problems, self.rl = (
            writer,
            tag,
            tokenizer,
            task,
            problems,
            rl,
        )
        self.last: dict = {}
        self.last_accuracy: float | None = None  # for StepProgress

    def evaluate(self, model, step: int) -> dict:
        with autocast(self.rl.bf16, next(model.parameters()).device.type):  # where the model is (CPU or GPU)
            self.last = evaluate_policy(
                model,
                self.tok,
                self.task,
                self.problems,
                self.rl.eval_samples,
                self.rl.max_completion_length,
                self.rl.temperature,
                seed=10_000 + step,
            )
        self.last_accuracy = self.last.get("sampled_accuracy", self.last["accuracy"])
        self.writer.write({**self.tag, "step": step, **self.last})
        return self.last

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.rl.eval_every == 0 or state.global_step == state.max_steps:
            self.evaluate(model, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.writer.write({**self.tag, "step": state.global_step, **logs})


def load_policy(model_path: str | Path):
    """(model, tokenizer) of a checkpoint folder; a LoRA warm start's folder (``adapter_config.json``) is merged
    into its base model."""
    if (Path(model_path) / "adapter_config.json").exists():
        return load_warm_policy(model_path, merge=True)
    return AutoModelForCausalLM.from_pretrained(model_path), load_tokenizer(model_path)


def reference_for(method: str, model) -> dict:
    """``{"oar_reference_model": a frozen copy of the warm start}`` for a scorer that needs a reference model
    (``prime``: its implicit reward is the log-ratio of the policy to the model it started from), else ``{}``.
    ``contrast_models`` (``cdpo``) are not provided: its pair is two models tuned on correct and on wrong
    rollouts, which the testbed does not train, and the trainer refuses the arm by name."""
    if "reference_model" not in SCORERS[method].needs:
        return {}
    return {"oar_reference_model": copy.deepcopy(model).eval().requires_grad_(False)}


def run_arm(
    arm: Arm,
    model_path: str | Path,
    task,
    rl: RLSettings,
    eval_problems: list,
    out_dir: Path,
    writer: JsonlWriter,
    seed: int = 0,
    progress: bool = True,
    tag: dict | None = None,
    evaluate_start: bool = False,
    peft_config: Any = None,
    bf16: bool = False,
) -> dict:
    """Train ``arm`` from ``model_path`` on ``task`` (a :class:`~oarl.lab.testbed.tasks.base.TestbedTask`) for
    ``rl.steps`` steps with ``seed``; held-out metrics every ``rl.eval_every`` steps. Returns a summary dict.

    ``model_path`` may be a LoRA warm start's folder (``adapter_config.json``, e.g. SmolLM2's wordop adapter):
    the adapter is merged into its base model first. ``peft_config`` (a ``peft.LoraConfig``; default
    ``rl.lora_config()``) trains fresh LoRA adapters on top instead of all weights; ``bf16`` (default
    ``rl.bf16``) runs the trainer and the evaluation under bfloat16 autocast."""
    if bf16 and not rl.bf16:
        rl = replace(rl, bf16=True)
    peft_config = peft_config if peft_config is not None else rl.lora_config()
    torch.manual_seed(seed)
    model, tok = load_policy(model_path)
    train = rl_dataset(task, rl.steps * rl.prompts_per_step, seed=20_000 + seed)
    check_trl_fields(rl.extra, "RLSettings.extra")  # again: extra may have been changed after construction
    both = sorted(set(rl.extra) & {k for k, _ in arm.trl_fields})
    if both:
        raise ValueError(
            f"{both} set both in RLSettings.extra and in arm {arm.name!r}'s trl_fields; set each once"
        )
    fields = {**rl.extra, **dict(arm.trl_fields)}
    options = None if arm.scorer_options is None else arm.scorer_options(tok, rl)
    oar = rl.arm_settings(arm.oar_method, options)
    args = OARConfig(
        output_dir=str(out_dir / f"{arm.name}-seed{seed}"),
        **config_fields(oar),  # every OAR field, derived (oar_mask_token: the id)
        use_cpu=rl.device == "cpu",
        bf16=rl.bf16,
        report_to="none",
        max_steps=rl.steps,
        per_device_train_batch_size=rl.prompts_per_step * rl.num_generations,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        learning_rate=rl.learning_rate,
        lr_scheduler_type="constant",
        beta=rl.kl_beta,
        logging_steps=1,
        gradient_checkpointing=False,
        save_strategy="no",
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
        log_completions=False,
        **fields,
    )
    tag = {"arm": arm.name, "label": arm.label, "method": arm.oar_method, "seed": seed, **(tag or {})}
    callback = PolicyEval(writer, tag, tok, task, eval_problems, rl)
    if evaluate_start:
        callback.evaluate(model, 0)
    trainer = OARGRPOTrainer(
        model=model,
        reward_funcs=task.reward,
        args=args,
        train_dataset=train,
        processing_class=tok,
        callbacks=[callback, StepProgress(f"{arm.label} seed {seed}", progress, callback)],
        token_labeler=decision_labeler(task),
        peft_config=peft_config,
        **reference_for(arm.oar_method, model),
    )
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
        **{f"final/{k}": v for k, v in callback.last.items()},
        "ess_ratio": mean_of("oar/ess_ratio"),
        "top10_adv_share": mean_of("oar/top10_adv_share"),
        "scorer_seconds": mean_of("oar/scorer_seconds"),
        "reward": mean_of("reward"),
        "entropy": mean_of("entropy"),
    }
