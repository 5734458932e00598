"""What ``OARGRPOTrainer`` gives the scorers beyond the batch: group ids and rewards (``group_rewards``) and a
reward function for their own samples (``generation``), both from TRL's rewards, as TRL computes them."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

#: ``reward_fn(row, sequences) -> rewards``: ``sequences`` are full token lists (prompt, then completion).
RewardFn = Callable[[int, list[list[int]]], Sequence[float]]


def _unwrap(func: Callable) -> Callable:
    """The callable inside any ``functools.partial`` layers."""
    while isinstance(func, functools.partial):
        func = func.func
    return func


def is_async(func: Callable) -> bool:
    """Whether calling ``func`` returns a coroutine, as TRL's ``is_async_callable`` sees it: through
    ``functools.partial`` (unwrapped to the wrapped callable) and a callable instance's ``__call__``."""
    func = _unwrap(func)
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)


def _name(func) -> str:
    func = _unwrap(func)
    return getattr(func, "__name__", type(func).__name__)


def check_reward_funcs(method: str, reward_funcs: list) -> None:
    """Refuse, before training, reward functions a ``generation`` scorer cannot call on its samples: reward
    models (``nn.Module``) and async functions, partials of them included (TRL runs those batched, on its own
    event loop)."""
    bad = [_name(f) for f in reward_funcs if isinstance(f, nn.Module) or not callable(f) or is_async(f)]
    if bad:
        raise ValueError(
            f"oar_method={method!r} rewards its own samples with the reward functions, which must be plain "
            f"synchronous callables; not {bad}"
        )


def local_groups(
    per_func: torch.Tensor, reward_weights: torch.Tensor, process_index: int, n: int, num_generations: int,
    method: str,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``group_ids[n]``, ``rewards[n]`` of process ``process_index``'s ``n`` rows.

    TRL gathers the rewards of every process (``per_func[N, F]``) and gives process ``p`` the rows
    ``[p n, (p + 1) n)``; its sampler repeats each prompt ``num_generations`` times in a row, so global row ``i``
    is in group ``i // num_generations``. The reward is TRL's weighted sum over reward functions, NaN where
    every function returned None. Raises when a group is split over processes (its other rows are not here).
    """
    device = per_func.device
    rewards = (per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
    rewards[torch.isnan(per_func).all(dim=1)] = float("nan")
    start = process_index * n
    group_ids = torch.arange(start, start + n, device=device) // num_generations
    if (torch.unique(group_ids, return_counts=True)[1] != num_generations).any():
        raise ValueError(
            f"oar_method={method!r} needs whole groups on each process, but this process's {n} rows split groups "
            f"of num_generations={num_generations}; make the per-process generation batch "
            "(per_device_train_batch_size * steps_per_generation) a multiple of num_generations"
        )
    return group_ids, rewards[start : start + n]


def _drop(*args, **kwargs) -> None:
    """``log_extra`` / ``log_metric`` for a scorer's own samples: accepted and discarded (see trl_reward_fn)."""


def trl_reward_fn(
    inputs: list[dict], prompt_mask: torch.Tensor, tokenizer, reward_funcs: list, reward_weights: torch.Tensor,
    state, method: str,
) -> RewardFn:  # fmt: skip
    """``reward_fn(row, sequences) -> [k]`` for scorers that need ``generation``: the sampled sequences' tokens
    after the row's prompt (``prompt_mask[row]`` counts them), decoded as TRL decodes completions, rewarded by
    TRL's reward functions with the row's prompt and dataset columns, weighted and summed as TRL does (NaN where
    every function returned None). Runs on this process only (no collective), so each process may call it any
    number of times. Text prompts only (conversational ones raise).

    The functions get the keyword arguments TRL gives them (``prompts``, ``completions``, ``completion_ids``,
    ``trainer_state``, ``log_extra``, ``log_metric`` and the dataset columns; ``environments`` never arises,
    since such a trainer is refused, :func:`.modes.check_generation_rollouts`). What they log through
    ``log_extra`` / ``log_metric`` about these samples is dropped: they are not TRL's completions, and TRL's
    completion table and metrics describe those only."""
    if not isinstance(inputs[0]["prompt"], str):
        raise ValueError(
            f"oar_method={method!r} rewards its samples as text completions; conversational prompts are not "
            "supported yet"
        )
    keys = [k for k in inputs[0] if k not in ("prompt", "completion", "completion_ids")]
    weights = reward_weights.float().cpu()

    def reward_fn(row: int, sequences: list[list[int]]) -> list[float]:
        n = int(prompt_mask[row].sum())
        ids = [s[n:] for s in sequences]
        completions = tokenizer.batch_decode(ids, skip_special_tokens=True)
        k = len(sequences)
        kwargs = {key: [inputs[row][key]] * k for key in keys}
        per_func = torch.tensor(
            [
                [float("nan") if r is None else float(r) for r in
                 f(prompts=[inputs[row]["prompt"]] * k, completions=completions, completion_ids=ids,
                   trainer_state=state, log_extra=_drop, log_metric=_drop, **kwargs)]
                for f in reward_funcs
            ]
        ).T  # fmt: skip
        total = (per_func * weights).nansum(1)
        total[torch.isnan(per_func).all(1)] = float("nan")
        return total.tolist()

    return reward_fn
