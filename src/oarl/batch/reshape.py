"""One OAR step on a batch of rollouts, trainer-independent: spans -> scores -> weights -> token advantages.

:func:`oar_token_advantages` is the pure function :class:`oarl.batch.step.OARStep` calls (a trainer calls the
step, with a :class:`~oarl.batch.rollout.Rollout`, after it has group-normalised its advantages).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from oarl.batch.credit import score_and_gate
from oarl.batch.rollout import Rollout
from oarl.batch.rollout_layout import completion_columns, rollout_layout
from oarl.batch.settings import OARSettings
from oarl.batch.spans import completion_span_masks, trained_spans
from oarl.core.advantages import reshape_advantages
from oarl.core.diagnostics import ess_ratio, top_mass_share
from oarl.core.scorers import get_scorer

__all__ = ["OARBatchResult", "OARSettings", "context_limit", "finite_advantages", "oar_token_advantages"]


@dataclass(kw_only=True)
class OARBatchResult:
    """Token advantages ``[B, T]`` plus per-row diagnostics (``[B]`` tensors; NaN where not scored), built by name.

    Fallback rows (bool ``[B]``), all of which keep uniform weights (their token advantages are plain GRPO's):
    ``no_span`` (no final answer found), ``no_reasoning`` (an answer but no token before it), ``too_long``
    (prompt + completion longer than the model's context), ``nonfinite`` (the scorer or the gate gave a
    NaN/inf). ``nonfinite_advantage``: the incoming sequence advantage itself was NaN/inf; it is set to 0.
    ``skipped``: rows not scored because their advantage is zero (``OARSettings.skip_zero_advantage``).
    """

    advantages: Tensor
    weights: Tensor
    scored: Tensor
    no_span: Tensor
    ess: Tensor
    top_share: Tensor
    seconds: float
    no_reasoning: Tensor | None = None
    too_long: Tensor | None = None
    nonfinite: Tensor | None = None
    nonfinite_advantage: Tensor | None = None
    skipped: Tensor | None = None


def context_limit(model: nn.Module) -> int | None:
    """The model's context length (``config.max_position_embeddings``), or None when it does not say."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def finite_advantages(advantages: Tensor) -> tuple[Tensor, Tensor]:
    """``advantages`` with NaN/inf replaced by 0 (that row then does not move the policy), and ``[B]`` where."""
    bad = ~torch.isfinite(advantages)
    return torch.where(bad, torch.zeros_like(advantages), advantages), bad


def score_rows(
    scored: Tensor, needs: frozenset[str], group_ids: Tensor | None, rewards: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The rows a scorer sees, ``context[n]`` (long), and which of them it scores, ``own[n]`` (bool).

    ``scored[B]`` bool. A scorer that needs ``group_rewards`` sees every row of each group with a scored row
    (a prefix tree over the scored rows alone would drop, e.g., the group's completions without an answer);
    any other sees the scored rows only (``own`` all True: the layout is exactly as before group context).
    """
    if "group_rewards" not in needs:
        rows = scored.nonzero().flatten()
        return rows, torch.ones_like(rows, dtype=torch.bool)
    if group_ids is None or rewards is None:
        raise ValueError(
            "this scorer needs group_rewards: give the Rollout rewards= and group_ids= or num_generations= (one per row)"
        )
    group_ids = group_ids.to(scored.device)
    context = torch.isin(group_ids, group_ids[scored]).nonzero().flatten()
    return context, scored[context]


def group_context(index: Tensor, group_ids: Tensor | None, rewards: Tensor | None) -> tuple:
    """``(group_ids[index], rewards[index])`` as float32 rewards, each None where not given."""
    gid = None if group_ids is None else group_ids.to(index.device)[index]
    rew = None if rewards is None else rewards.to(index.device, torch.float32)[index]
    return gid, rew


def _batch_row_reward(reward_fn: Callable, rows: list[int], row: int, sequences: list[list[int]]):
    """The batch's ``reward_fn`` called with the batch row of layout row ``row``."""
    return reward_fn(rows[row], sequences)


def oar_token_advantages(
    model: nn.Module,
    tokenizer,
    rollout: Rollout,
    settings: OARSettings,
    generator: torch.Generator | None = None,
    *,
    reference_model: nn.Module | None = None,
    contrast_models: tuple[nn.Module, nn.Module] | None = None,
) -> OARBatchResult:
    """Reshape a rollout's GRPO advantages per token (the pure function; :class:`~oarl.batch.step.OARStep` adds
    its state: generator, warm-up, labeler, metrics).

    Args:
        model: the policy (a transformers causal LM).
        tokenizer: its tokenizer (for answer spans).
        rollout: the batch (:class:`~oarl.batch.rollout.Rollout`: ``[B, P]`` prompts, ``[B, T]`` completions,
            ``[B]`` advantages, and the optional rewards, groups, loss mask, oracle labels, reward function).
            A scorer that needs ``group_rewards`` sees every row of each group that has a scored row (the
            context rows, the ones not scored, with empty reasoning and answer masks but their tokens in the
            layout's ``completion_mask``), so that a group statistic is over the whole group, not over its
            scored rows.
        settings: scorer, gate and switches (``skip_zero_advantage``: rows whose advantage is exactly zero are
            not scored; ``A_t = A * w_t`` is zero for any weights).
        generator: randomness for OAR-G noise / random scores.
        reference_model, contrast_models: read by the scorers that need ``reference_model`` (``prime``) /
            ``contrast_models`` (``cdpo``); ``tokenizer`` goes to those that need ``tokenizer`` (``hicra``).

    Returns:
        :class:`OARBatchResult`; rows without an answer span, without reasoning tokens, longer than the
        model's context, skipped, or whose scores are not finite keep weight 1 everywhere (so their token
        advantages equal plain GRPO's). The token advantages are always finite. A ``uniform`` scorer (plain
        GRPO) scores nothing: weights 1, ESS 1, 0 s.
    """
    completion_ids, completion_mask = rollout.completion_ids, rollout.completion_mask
    prompt_ids, prompt_mask = rollout.prompt_ids, rollout.prompt_mask
    group_ids, rewards = rollout.groups, rollout.rewards
    B, T = completion_ids.shape
    device = completion_ids.device
    ones = torch.ones(B, T, dtype=torch.float32, device=device)
    nan = torch.full((B,), float("nan"), device=device)
    none = torch.zeros(B, dtype=torch.bool, device=device)
    skip = (rollout.advantages == 0) if settings.skip_zero_advantage else None
    advantages, bad_adv = finite_advantages(rollout.advantages)
    trained = rollout.trained
    start = time.perf_counter()
    # Spans for plain GRPO too: its answerless / reasoning-less fractions are logged like every arm's.
    spans = completion_span_masks(tokenizer, completion_ids, completion_mask, settings.span_finders)
    spans = trained_spans(spans, trained)
    has_reasoning = spans.reasoning.any(-1)
    scorer = get_scorer(settings.method)
    if scorer.uniform:  # plain GRPO through the same [B, T] path; uniform weights have ESS 1
        adv = reshape_advantages(advantages, ones)
        return OARBatchResult(
            advantages=adv,
            weights=ones,
            scored=none,
            no_span=~spans.found,
            ess=torch.ones_like(nan),
            top_share=top_mass_share(adv, trained),
            seconds=0.0,
            no_reasoning=spans.found & ~has_reasoning,
            too_long=none,
            nonfinite=none,
            nonfinite_advantage=bad_adv,
            skipped=skip,
        )
    limit = context_limit(model)
    lengths = prompt_mask.sum(-1).to(device) + completion_mask.sum(-1)
    too_long = lengths > limit if limit is not None else none.clone()
    scored = spans.found & has_reasoning & ~too_long
    if skip is not None:
        scored &= ~skip.to(scored.device)
    weights = ones.clone()
    ess = nan.clone()
    nonfinite = none.clone()
    rows = scored.nonzero().flatten()
    if len(rows):
        context, own = score_rows(scored, scorer.needs, group_ids, rewards)
        P = prompt_ids.shape[1]
        # group scorers read the trained tokens (tool output excluded) as a row's own
        layout = rollout_layout(
            prompt_ids[context],
            prompt_mask[context],
            completion_ids[context],
            completion_mask[context],
            spans.reasoning[context] & own[:, None],
            spans.answer[context] & own[:, None],
            trained[context],
            *group_context(context, group_ids, rewards),
        )
        labels = rollout.oracle_labels
        oracle = None if labels is None else completion_columns(labels[context].to(prompt_ids.device), P)
        reward_fn = rollout.reward_fn
        row_fn = None if reward_fn is None else partial(_batch_row_reward, reward_fn, context.tolist())
        # the context rows of group scorers are read, not scored; the gate runs over the completion columns
        credit = score_and_gate(
            model,
            layout,
            settings,
            generator=generator,
            oracle_mask=oracle,
            reward_fn=row_fn,
            reference_model=reference_model,  # per-run models (OARStep fields)
            contrast_models=contrast_models,
            tokenizer=tokenizer,
            rows=own,
            start=P,
        )
        w, bad = credit.weights, credit.nonfinite
        weights[rows] = w.to(weights.dtype)
        ess[rows] = ess_ratio(w, spans.reasoning[rows])
        nonfinite[rows] = bad
        ess[rows[bad]] = float("nan")
        scored[rows[bad]] = False
    token_adv = reshape_advantages(advantages, weights)
    share = top_mass_share(token_adv, trained)
    return OARBatchResult(
        advantages=token_adv,
        weights=weights,
        scored=scored,
        no_span=~spans.found,
        ess=ess,
        top_share=share,
        seconds=time.perf_counter() - start,
        no_reasoning=spans.found & ~has_reasoning,
        too_long=too_long,
        nonfinite=nonfinite,
        nonfinite_advantage=bad_adv,
        skipped=skip,
    )
