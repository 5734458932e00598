"""Held-out evaluation of a testbed policy: what a study plots at every evaluation step.

- ``accuracy``: greedy held-out accuracy;
- ``sampled_accuracy``: mean reward of ``samples`` completions per problem at the RL temperature (what RL
  optimises; the study's primary metric);
- ``pass_all`` / ``pass_none``: share of problems whose samples are all right / all wrong (collapse shows as
  both growing while the mean stays put);
- ``length``: mean completion length in tokens;
- ``entropy/<role>``: mean policy entropy at the completion tokens of each role (causal, chatter, ...), read
  off the sampled completions: does credit leave the chatter alone and sharpen the decisions?
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import nn

from oarl.lab.math.evaluation import generate_completions
from oarl.lab.testbed.tasks.base import TestbedTask, token_roles


@torch.no_grad()
def role_entropies(
    model: nn.Module, tokenizer, task: TestbedTask, prompts: Sequence[str], completions: Sequence[str]
) -> dict[str, float]:
    """Mean entropy ``H(softmax(logits[t-1]))`` of the policy at completion tokens, per token role."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for i in range(0, len(prompts), 64):
            p_enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[i : i + 64]]
            c_enc = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions[i : i + 64]]
            L = max(len(p) + len(c) for p, c in zip(p_enc, c_enc, strict=True))
            ids = torch.full((len(p_enc), L), tokenizer.pad_token_id)
            mask = torch.zeros_like(ids)
            for b, (p, c) in enumerate(zip(p_enc, c_enc, strict=True)):
                ids[b, : len(p) + len(c)] = torch.tensor(p + c)
                mask[b, : len(p) + len(c)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = torch.log_softmax(logits.float(), -1).cpu()
            ent = -(logp.exp() * logp).sum(-1)  # [B, L]: entropy of the step that predicts position t + 1
            for b, (p, c) in enumerate(zip(p_enc, c_enc, strict=True)):
                roles = token_roles(tokenizer, prompts[i + b], c, task)
                for j, role in enumerate(roles):
                    sums[role] += float(ent[b, len(p) + j - 1])
                    counts[role] += 1
    finally:
        model.train(was_training)
    return {role: sums[role] / counts[role] for role in sums}


def evaluate_policy(
    model: nn.Module,
    tokenizer,
    task: TestbedTask,
    problems: Sequence,
    samples: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> dict[str, float]:
    """Greedy and sampled held-out metrics (module docstring). Sampling runs on a forked RNG seeded by ``seed``,
    so it neither shifts the training's random stream nor differs between arms for equal weights."""
    prompts = [p.prompt for p in problems]
    answers = [p.answer for p in problems]
    greedy = generate_completions(model, tokenizer, prompts, max_new_tokens)
    out = {"accuracy": _mean(task.reward(prompts, greedy, answers))}
    if samples < 1:
        return out
    rep_prompts = [p for p in prompts for _ in range(samples)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sampled = generate_completions(
            model, tokenizer, rep_prompts, max_new_tokens, do_sample=True, temperature=temperature
        )
    rewards = task.reward(rep_prompts, sampled, [a for a in answers for _ in range(samples)])
    per_problem = [rewards[i * samples : (i + 1) * samples] for i in range(len(problems))]
    out["sampled_accuracy"] = _mean(rewards)
    out["pass_all"] = _mean([float(all(r == 1.0 for r in rs)) for rs in per_problem])
    out["pass_none"] = _mean([float(not any(r == 1.0 for r in rs)) for rs in per_problem])
    out["length"] = _average([len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in sampled])
    for role, h in role_entropies(model, tokenizer, task, rep_prompts, sampled).items():
        out[f"entropy/{role}"] = h
    return out


def _mean(rewards: Sequence[float]) -> float:
    """Share of rewards equal to 1 (a correct answer)."""
    return sum(1.0 for x in rewards if x == 1.0) / len(rewards) if rewards else float("nan")


def _average(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")
