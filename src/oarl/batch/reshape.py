"""One OAR step on a batch of rollouts, trainer-independent: spans -> scores -> weights -> token advantages.

This is what a trainer calls after it has group-normalised advantages (TRL's ``OARGRPOTrainer`` does; a
verl or custom loop can call it the same way).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from oarl.batch.credit import score_and_gate
from oarl.batch.layout import completion_columns, rollout_layout
from oarl.batch.spans import SPAN_FINDERS, completion_span_masks, trained_spans
from oarl.core.advantages import reshape_advantages
from oarl.core.diagnostics import ess_ratio, top_mass_share
from oarl.core.gating import BETA, FLOOR, TAU, check_gate_params
from oarl.core.probes import check_probe
from oarl.core.scorers import SCORERS, get_scorer, shared_options


def methods() -> tuple[str, ...]:
    """Valid ``method`` values: ``"none"`` (plain GRPO) and every registered scorer, read at call time."""
    return ("none", *SCORERS)


def method_label(method: str) -> str:
    """Display label of a method (``"GRPO"`` for ``"none"``, else the scorer's); other names as they are."""
    if method == "none":
        return "GRPO"
    return SCORERS[method].display if method in SCORERS else method


def model_free(method: str) -> bool:
    """True when ``method`` never runs the model (plain GRPO and the scorers that do not need it)."""
    return method == "none" or get_scorer(method).model_free


#: Scorer options set only through their named settings (the warm-up switches ``probe``; the trainer resolves
#: ``mask_token_id`` from ``oar_mask_token``), never through ``scorer_options``.
NAMED_ONLY = ("probe", "mask_token_id")


@dataclass
class OARSettings:
    """What to score with and how to gate: the one settings object. ``OARConfig`` (``oar_*`` fields) and the
    testbed's ``RLSettings`` take their defaults from it. ``method="none"`` is plain GRPO.

    The named scorer settings (``probe``, ``mask_token_id``, ``noise_std``, ``max_batch_tokens``) are shared by
    every scorer and each applies to the scorers that have that option (``noise_std`` to OAR-G, not to OAR-P);
    ``None`` leaves the scorer's own default. ``scorer_options`` are the chosen scorer's own options, checked
    here against it (:meth:`ScorerSpec.validate`): an unknown key, or one also set by a named setting, raises.
    """

    method: str = "gradient"
    probe: str = "as_mean"
    tau: float = TAU
    beta: float = BETA
    floor: float = FLOOR
    noise_std: float | None = None
    mask_token_id: int | None = None
    max_batch_tokens: int | None = None
    span_finders: list[str] | None = field(default=None)
    scorer_options: dict | None = field(default=None)

    def __post_init__(self) -> None:
        if self.method not in methods():
            raise ValueError(f"unknown OAR method {self.method!r}; expected one of {methods()}")
        check_probe(self.probe)
        check_gate_params(self.tau, self.beta, self.floor)
        if self.noise_std is not None and not self.noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}")
        if self.span_finders is not None:
            unknown = [n for n in self.span_finders if n not in SPAN_FINDERS]
            if unknown or isinstance(self.span_finders, str):
                raise ValueError(
                    f"span_finders must be a list of names in {sorted(SPAN_FINDERS)}, got {self.span_finders!r}"
                )
        if self.scorer_options is not None and not isinstance(self.scorer_options, dict):
            raise ValueError(f"scorer_options must be a dict, got {type(self.scorer_options).__name__}")
        self.resolved_options()  # fails here, at config time, on a bad option

    def resolved_options(self) -> dict[str, Any]:
        """The options the scorer is called with: the named settings it takes, plus ``scorer_options``."""
        given = dict(self.scorer_options or {})
        if self.method == "none":
            if given:
                raise ValueError(f"method 'none' (plain GRPO) takes no scorer options, got {sorted(given)}")
            return {}
        named = {
            "probe": self.probe,
            "mask_token_id": self.mask_token_id,
            "noise_std": self.noise_std,
            "max_batch_tokens": self.max_batch_tokens,
        }
        twice = sorted(k for k in given if k in NAMED_ONLY or named.get(k) is not None)
        if twice:
            raise ValueError(
                f"scorer option(s) {twice} are also named settings (oar_{twice[0]}); set each in one place "
                f"({NAMED_ONLY} only through their named settings)"
            )
        named = {k: v for k, v in named.items() if v is not None}
        options = {**shared_options(self.method, **named), **given}
        get_scorer(self.method).validate(options, unlisted=NAMED_ONLY)
        return options


@dataclass
class OARBatchResult:
    """Token advantages ``[B, T]`` plus per-row diagnostics (``[B]`` tensors; NaN where not scored).

    Fallback rows (bool ``[B]``), all of which keep uniform weights (their token advantages are plain GRPO's):
    ``no_span`` (no final answer found), ``no_reasoning`` (an answer but no token before it), ``too_long``
    (prompt + completion longer than the model's context), ``nonfinite`` (the scorer or the gate gave a
    NaN/inf). ``nonfinite_advantage``: the incoming sequence advantage itself was NaN/inf; it is set to 0.
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
        raise ValueError("this scorer needs group_rewards: pass group_ids= and rewards= (one per row)")
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
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    advantages: Tensor,
    settings: OARSettings,
    skip_rows: Tensor | None = None,
    generator: torch.Generator | None = None,
    oracle_mask: Tensor | None = None,
    group_ids: Tensor | None = None,
    rewards: Tensor | None = None,
    reward_fn: Callable[[int, list[list[int]]], Sequence[float]] | None = None,
    loss_mask: Tensor | None = None,
    reference_model: nn.Module | None = None,
    contrast_models: tuple[nn.Module, nn.Module] | None = None,
) -> OARBatchResult:
    """Reshape GRPO advantages per token for a batch of rollouts.

    Args:
        model: the policy (a transformers causal LM).
        tokenizer: its tokenizer (for answer spans).
        prompt_ids, prompt_mask: ``[B, P]`` (left padded, as TRL gives them).
        completion_ids, completion_mask: ``[B, T]`` (right padded).
        advantages: ``[B]`` group-normalised sequence advantages.
        settings: scorer and gate settings.
        skip_rows: ``[B]`` bool, rows not to score (e.g. zero-advantage groups): weights 1.
        generator: randomness for OAR-G noise / random scores.
        oracle_mask: ``[B, T]`` bool, known decisive completion tokens (only the ``oracle`` scorer reads it).
        group_ids, rewards: ``[B]`` each, the prompt group of each row and its scalar reward (NaN: unscorable);
            required by scorers that need ``group_rewards``, passed in the layout to every scorer when given.
            A scorer that needs them sees every row of each group that has a scored row (the context rows, the
            ones not scored, with empty reasoning and answer masks but their tokens in the layout's
            ``completion_mask``), so that a group statistic is over the
            whole group, not over its scored rows.
        reward_fn: ``reward_fn(row, sequences) -> rewards``, ``row`` in ``[0, B)``, ``sequences`` full token
            lists (the row's attended prompt tokens, then a completion); read by scorers that need
            ``generation`` (e.g. ``resample``).
        loss_mask: ``[B, T]``, the completion tokens the loss trains on, when not all of them (TRL's
            ``tool_mask``: 0 on tool / environment output). Those tokens stay in the context the scorer reads,
            but are never scored nor an answer span, and the weights sum to the count of trained tokens
            (:func:`oarl.batch.spans.trained_spans`).
        reference_model, contrast_models: read by the scorers that need ``reference_model`` (``prime``) /
            ``contrast_models`` (``cdpo``); ``tokenizer`` goes to those that need ``tokenizer`` (``hicra``).

    Returns:
        :class:`OARBatchResult`; rows without an answer span, without reasoning tokens, longer than the
        model's context, skipped, or whose scores are not finite keep weight 1 everywhere (so their token
        advantages equal plain GRPO's). The token advantages are always finite.
    """
    B, T = completion_ids.shape
    device = completion_ids.device
    ones = torch.ones(B, T, dtype=torch.float32, device=device)
    nan = torch.full((B,), float("nan"), device=device)
    none = torch.zeros(B, dtype=torch.bool, device=device)
    advantages, bad_adv = finite_advantages(advantages)
    trained = (
        completion_mask.bool() if loss_mask is None else completion_mask.bool() & loss_mask.to(device).bool()
    )
    start = time.perf_counter()
    # Spans for plain GRPO too: its answerless / reasoning-less fractions are logged like every arm's.
    spans = completion_span_masks(tokenizer, completion_ids, completion_mask, settings.span_finders)
    spans = trained_spans(spans, trained)
    has_reasoning = spans.reasoning.any(-1)
    if settings.method == "none":  # plain GRPO through the same [B, T] path; uniform weights have ESS 1
        adv = reshape_advantages(advantages, ones)
        share = top_mass_share(adv, trained)
        return OARBatchResult(
            adv,
            ones,
            none,
            ~spans.found,
            torch.ones_like(nan),
            share,
            0.0,
            spans.found & ~has_reasoning,
            none,
            none,
            bad_adv,
        )
    limit = context_limit(model)
    lengths = prompt_mask.sum(-1).to(device) + completion_mask.sum(-1)
    too_long = lengths > limit if limit is not None else none.clone()
    scored = spans.found & has_reasoning & ~too_long
    if skip_rows is not None:
        scored &= ~skip_rows.to(scored.device)
    weights = ones.clone()
    ess = nan.clone()
    nonfinite = none.clone()
    rows = scored.nonzero().flatten()
    if len(rows):
        options = settings.resolved_options()
        context, own = score_rows(scored, get_scorer(settings.method).needs, group_ids, rewards)
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
        oracle = (
            None if oracle_mask is None else completion_columns(oracle_mask[context].to(prompt_ids.device), P)
        )
        row_fn = None if reward_fn is None else partial(_batch_row_reward, reward_fn, context.tolist())
        # the context rows of group scorers are read, not scored; the gate runs over the completion columns
        credit = score_and_gate(
            model,
            layout,
            settings.method,
            options,
            tau=settings.tau,
            beta=settings.beta,
            floor=settings.floor,
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
    )
