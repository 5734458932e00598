"""GRPO with OAR token advantages in one file, without TRL's trainer (cleanRL style).

Each step samples ``--prompts`` flag-task problems and ``--generations`` completions of each from the policy,
rewards them, group-normalises the rewards into the ``A[B]`` of its :class:`oarl.batch.rollout.Rollout`, hands that
rollout as it is to :class:`oarl.batch.step.OARStep` (which reshapes ``A`` into ``A_t[B, T]``) and takes
``--update-epochs`` optimizer steps on the clipped per-token surrogate (ratio per
token, ``--clip-eps`` 0.2; summed over completion tokens and divided by their count, as TRL's default loss).
It starts from the shipped flag warm start (the repository's ``checkpoints/``). The OAR step is the only oarl
object the loop needs; a verl or OpenRLHF integration would call it the same way (docs/architecture.md). It
imports no TRL (tests/test_task_registry.py).

    python examples/grpo_oar.py --method gradient --steps 60 --seed 0
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoModelForCausalLM

from oarl.batch.rollout import Rollout
from oarl.batch.settings import OARSettings, methods
from oarl.batch.step import OARStep
from oarl.lab.math.evaluation import accuracy
from oarl.lab.testbed.tasks import get_task_recipe
from oarl.lab.testbed.warmstart import find_warm_start
from oarl.utils.checkpoint import load_tokenizer


def load_policy(chatter: str = "none", cache_dir: str = "runs/cache") -> tuple[nn.Module, Any, Any]:
    """``(model, tokenizer, task)``: the flag task and its shipped SFT warm start."""
    recipe = get_task_recipe("flag")
    task = recipe.make(replace(recipe.config, chatter=chatter))
    path = find_warm_start(task, recipe.warm_start, cache_dir)
    if path is None:
        raise SystemExit(
            f"no flag warm start for chatter={chatter!r}: run `oarl warmstart --chatter {chatter}`"
        )
    return AutoModelForCausalLM.from_pretrained(path), load_tokenizer(path), task


def completion_mask(completion_ids: Tensor, eos_id: int) -> Tensor:
    """``[B, T]`` int: 1 up to and including each row's first EOS (all 1 without one), as TRL masks."""
    is_eos = completion_ids == eos_id
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), completion_ids.shape[1])
    return (torch.arange(completion_ids.shape[1], device=first.device) <= first[:, None]).int()


@torch.no_grad()
def rollout(model: nn.Module, tok, task, problems: list, args: argparse.Namespace) -> Rollout:
    """Sample ``--generations`` completions per problem (each prompt's consecutive), reward them (``task.reward``:
    1.0 right, else 0) and group-normalise the rewards into the rollout's advantages."""
    prompts = [p.prompt for p in problems for _ in range(args.generations)]
    answers = [p.answer for p in problems for _ in range(args.generations)]
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    model.eval()
    sampling = dict(do_sample=True, temperature=args.temperature, top_k=None, top_p=None)
    out = model.generate(**enc, **sampling, max_new_tokens=args.max_new_tokens, pad_token_id=tok.pad_token_id)
    comp = out[:, enc.input_ids.shape[1] :]
    mask = completion_mask(comp, tok.eos_token_id)
    texts = tok.batch_decode(comp.masked_fill(mask == 0, tok.pad_token_id), skip_special_tokens=True)
    rewards = torch.tensor(task.reward(prompts, texts, answer=answers), dtype=torch.float32)
    adv = group_advantages(rewards, args.generations)
    return Rollout(
        enc.input_ids, enc.attention_mask, comp, mask, adv, rewards=rewards, num_generations=args.generations
    )


def group_advantages(rewards: Tensor, generations: int) -> Tensor:
    """``A[B] = (r - mean_group) / (std_group + 1e-4)`` (unbiased std), as TRL's ``scale_rewards="group"``."""
    r = rewards.view(-1, generations)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).flatten()


def per_token_logps(model: nn.Module, batch: Rollout, temperature: float) -> Tensor:
    """``[B, T]`` log-probabilities of the completion tokens under ``model`` (logits / temperature)."""
    ids = torch.cat([batch.prompt_ids, batch.completion_ids], 1)
    attn = torch.cat([batch.prompt_mask, batch.completion_mask], 1)
    positions = (attn.cumsum(1) - 1).clamp(min=0)  # left padding: positions as generate() gave them
    logits = model(input_ids=ids, attention_mask=attn, position_ids=positions).logits
    logits = logits[:, batch.prompt_ids.shape[1] - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)


def compute_loss(
    logps: Tensor, old_logps: Tensor, token_adv: Tensor, mask: Tensor, clip_eps: float = 0.2
) -> Tensor:
    """Clipped surrogate, per token: ``-min(ρ_t A_t, clip(ρ_t, 1 ± ε) A_t)``, ``ρ_t = exp(logp - logp_old)``;
    summed over the ``mask``ed tokens and divided by their count. All inputs ``[B, T]``; returns a scalar."""
    ratio = torch.exp(logps - old_logps)
    surrogate = torch.min(ratio * token_adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * token_adv)
    return -(surrogate * mask).sum() / mask.sum().clamp(min=1)


def sampled_accuracy(model: nn.Module, tok, task, problems: list, args: argparse.Namespace) -> float:
    """Mean reward of one completion per held-out problem sampled at ``--temperature`` (fixed seed)."""
    prompts, answers = [p.prompt for p in problems], [p.answer for p in problems]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10_000)
        sampling = dict(do_sample=True, temperature=args.temperature)
        acc, _ = accuracy(model, tok, prompts, task.reward, args.max_new_tokens, **sampling, answer=answers)
    return acc


def train(args: argparse.Namespace) -> list[dict[str, float]]:
    """Run the loop; one record per step (``reward``: the batch's mean, ``accuracy``: every ``--eval-every``)."""
    torch.manual_seed(args.seed)
    model, tok, task = load_policy(args.chatter)
    settings = OARSettings(
        method=args.method, probe=args.probe, noise_std=args.noise_std, mask_token_id=tok.pad_token_id
    )
    step = OARStep(settings, seed=args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    problems = task.problems(args.steps * args.prompts, seed=20_000 + args.seed)
    held_out = task.problems(args.eval_problems, seed=30_000)
    history = []
    if args.eval_every:
        history.append({"step": 0, "accuracy": sampled_accuracy(model, tok, task, held_out, args)})
    for i in range(args.steps):
        start = time.perf_counter()
        batch = rollout(model, tok, task, problems[i * args.prompts : (i + 1) * args.prompts], args)
        token_adv, metrics = step(model, tok, batch)  # the OAR step: the loop's only oarl call
        model.train()
        old_logps = None
        for _ in range(args.update_epochs):
            logps = per_token_logps(model, batch, args.temperature)
            if old_logps is None:  # the sampling policy: the first update is on-policy (ratio 1)
                old_logps = logps.detach()
            loss = compute_loss(logps, old_logps, token_adv, batch.completion_mask, args.clip_eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
        record = {"step": i + 1, "reward": batch.rewards.mean().item(), "loss": loss.item(), **metrics}
        record["seconds"] = time.perf_counter() - start
        if args.eval_every and ((i + 1) % args.eval_every == 0 or i + 1 == args.steps):
            record["accuracy"] = sampled_accuracy(model, tok, task, held_out, args)
        history.append(record)
        if not args.quiet:
            shown = ("step", "reward", "loss", "oar/scored_frac", "oar/ess_ratio", "accuracy", "seconds")
            print(" ".join(f"{k}={record[k]:.4g}" for k in shown if k in record), flush=True)
    return history


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default="gradient", choices=methods(), help="OAR scorer; 'none' = plain GRPO")
    p.add_argument("--probe", default=OARSettings.probe, help="outcome probe: lt_logits, as_mean, as_joint")
    p.add_argument("--noise-std", type=float, default=0.1, help="OAR-G embedding noise (the flag recipe's)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--generations", type=int, default=8, help="completions per prompt (the group)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--clip-eps", type=float, default=0.2)
    p.add_argument("--update-epochs", type=int, default=1, help="optimizer steps per batch (> 1: clip acts)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--chatter", default="none", choices=["none", "some", "heavy"], help="flag task's chatter")
    p.add_argument("--eval-every", type=int, default=10, help="held-out sampled accuracy (0: never)")
    p.add_argument("--eval-problems", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: the same numbers on any machine)"
    )
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    cli = parse_args()
    torch.set_num_threads(cli.threads)
    train(cli)
