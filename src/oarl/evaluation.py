"""Batched generation and accuracy for a local causal LM (the demo's held-out evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm


@torch.no_grad()
def generate_completions(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    progress: bool = False,
) -> list[str]:
    """Generate one completion per prompt (left padding, greedy unless ``do_sample``); special tokens removed."""
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for i in tqdm(range(0, len(prompts), batch_size), desc="generate", disable=not progress, leave=False):
            enc = tokenizer(
                list(prompts[i : i + batch_size]),
                return_tensors="pt",
                padding=True,
                padding_side="left",
                add_special_tokens=False,
            ).to(next(model.parameters()).device)
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature if do_sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            out.extend(tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    finally:
        model.train(was_training)
    return out


def accuracy(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    reward_fn: Callable[..., list[float]],
    max_new_tokens: int = 64,
    batch_size: int = 64,
    **reward_columns: Sequence,
) -> tuple[float, list[str]]:
    """Greedy accuracy: mean of ``reward_fn(prompts, completions, **reward_columns) == 1``."""
    completions = generate_completions(model, tokenizer, prompts, max_new_tokens, batch_size)
    rewards = reward_fn(prompts=list(prompts), completions=completions, **reward_columns)
    return sum(r == 1.0 for r in rewards) / max(len(rewards), 1), completions
