"""Batched generation, accuracy and pass@k for a local causal LM (the demo's held-out evaluation, `oarl eval`)."""

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
    do_sample: bool = False,
    temperature: float = 1.0,
    **reward_columns: Sequence,
) -> tuple[float, list[str]]:
    """Accuracy (greedy unless ``do_sample``): mean of ``reward_fn(prompts, completions, **reward_columns) == 1``."""
    completions = generate_completions(
        model, tokenizer, prompts, max_new_tokens, batch_size, do_sample=do_sample, temperature=temperature
    )
    rewards = reward_fn(prompts=list(prompts), completions=completions, **reward_columns)
    return sum(r == 1.0 for r in rewards) / max(len(rewards), 1), completions


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct out of ``n`` samples: ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)`` (no huge binomials, no cancellation).
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(correct: Sequence[int], n: int, k: int) -> float:
    """pass@k averaged over problems; ``correct[i]`` is the number of correct samples of problem ``i``."""
    if not correct:
        raise ValueError("no problems")
    return sum(pass_at_k(n, c, k) for c in correct) / len(correct)


@torch.no_grad()
def sample_completions(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    n: int = 1,
    max_new_tokens: int = 512,
    batch_size: int = 32,
    temperature: float = 1.0,
    top_p: float = 1.0,
    add_special_tokens: bool = False,
    progress: bool = False,
) -> list[list[str]]:
    """``n`` completions per prompt with ``model.generate`` (greedy when ``temperature == 0``).

    Prompts are batched by length (less padding; left padded) with about ``batch_size`` sequences per
    ``generate`` call, and returned in the input order: ``out[i]`` holds the ``n`` completions of prompt ``i``
    (special tokens removed). ``add_special_tokens`` should match how training tokenised the prompts (TRL
    adds them to plain-text prompts; chat-template text already contains them).
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    if temperature == 0 and n > 1:
        raise ValueError(
            "greedy decoding (temperature 0) gives the same completion n times; use temperature > 0"
        )
    lengths = [
        len(ids) for ids in tokenizer(list(prompts), add_special_tokens=add_special_tokens)["input_ids"]
    ]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    per_call = max(1, batch_size // n)
    out: list[list[str]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None}
    greedy = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    try:
        with tqdm(total=len(prompts) * n, desc="generate", disable=not progress, unit="seq") as bar:
            for start in range(0, len(order), per_call):
                idx = order[start : start + per_call]
                enc = tokenizer(
                    [prompts[i] for i in idx],
                    return_tensors="pt",
                    padding=True,
                    padding_side="left",
                    add_special_tokens=add_special_tokens,
                ).to(device)
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=n,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    **(sampling if temperature > 0 else greedy),
                )
                texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                for j, i in enumerate(idx):
                    out[i] = texts[j * n : (j + 1) * n]
                bar.update(len(idx) * n)
    finally:
        model.train(was_training)
    return out
