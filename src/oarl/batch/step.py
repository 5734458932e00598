"""The OAR step as one object a trainer calls: ``A[B] -> A_t[B, T]`` plus its metrics.

:func:`oarl.batch.reshape.oar_token_advantages` is the pure function (spans -> scores -> gate -> ``A_t = A·w_t``);
:class:`OARStep` adds what every trainer would otherwise rewrite around it: the scorer's random generator
(seeded once, with ``state_dict`` / ``load_state_dict`` for checkpoints), the probe warm-up (LT-Logits for the
first ``probe_warmup_steps`` calls), the zero-advantage skip, the default group layout (``num_generations``
consecutive rows per prompt, as TRL's and verl's samplers lay them out) and the ``oar/*`` metrics. A custom
loop (``examples/grpo_oar.py``), a verl actor worker or OpenRLHF calls it after its group normalisation::

    step = OARStep(OARSettings(method="gradient"), seed=0)
    token_adv, metrics = step(model, tokenizer, prompt_ids, prompt_mask, completion_ids, completion_mask,
                              advantages, rewards=rewards, num_generations=8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from oarl.batch.reshape import OARBatchResult, OARSettings, oar_token_advantages
from oarl.core.scorers import get_scorer

#: ``labeler(tokenizer, prompt_ids, completion_ids, completion_mask) -> [B, T] bool`` (known decisive tokens).
TokenLabeler = Callable[[Any, Tensor, Tensor, Tensor], Tensor]
#: ``gather(t) -> t`` across processes (``accelerator.gather``); the identity on one process.
Gather = Callable[[Tensor], Tensor]


def _identity(t: Tensor) -> Tensor:
    return t


def step_metrics(
    res: OARBatchResult, trained: Tensor, skip: Tensor | None, gather: Gather = _identity
) -> dict[str, float]:
    """The ``oar/*`` metrics of one step, reduced over processes by ``gather`` (means of rows, sums of counts).

    ``trained[B, T]``: the completion tokens the loss trains on (``completion_mask``, times a tool mask where
    there is one). ``oar/weight_mean`` is Σ w_t / T over them (1.0 when the gate kept the mass),
    ``oar/ess_ratio`` and ``oar/top10_adv_share`` the paper's diagnostics averaged over scored rows.
    """
    mask = trained.bool()
    w_sum = (res.weights * mask).sum().reshape(1)
    n_tok = mask.sum().reshape(1).float()
    w_max = res.weights.where(mask, torch.zeros_like(res.weights)).amax().reshape(1)
    skipped = torch.zeros_like(res.scored) if skip is None else skip.to(res.scored.device)
    none = torch.zeros_like(res.scored)

    def frac(t: Tensor | None) -> float:
        return gather((none if t is None else t).float()).mean().item()

    def count(t: Tensor | None) -> float:
        return gather((none if t is None else t).float()).sum().item()

    return {
        "oar/ess_ratio": torch.nanmean(gather(res.ess)).item(),
        "oar/top10_adv_share": torch.nanmean(gather(res.top_share)).item(),
        "oar/weight_mean": (gather(w_sum).sum() / gather(n_tok).sum().clamp(min=1)).item(),
        "oar/weight_max": gather(w_max).max().item(),
        "oar/no_span_frac": frac(res.no_span),
        "oar/scored_frac": frac(res.scored),
        "oar/zero_adv_skipped_frac": frac(skipped),
        "oar/no_reasoning_frac": frac(res.no_reasoning),
        "oar/too_long_frac": frac(res.too_long),
        "oar/nonfinite_fallback": count(res.nonfinite),
        "oar/nonfinite_advantage": count(res.nonfinite_advantage),
        "oar/zero_adv_scored": count(skipped & res.scored),  # must stay 0
        "oar/scorer_seconds": gather(torch.tensor([res.seconds], device=res.weights.device)).max().item(),
    }


@dataclass
class OARStep:
    """One OAR step with its state: settings, generator, warm-up counter; see the module docstring.

    ``seed`` seeds the generator on first use (``seed + 7919 * process_index``, as ``OARGRPOTrainer`` does, so
    the two draw the same noise on the same batch). ``token_labeler`` is required by the ``oracle`` scorer,
    ``reference_model`` (a frozen model) by the scorers that need ``reference_model`` (``prime``) and
    ``contrast_models = (positive, negative)`` by those that need ``contrast_models`` (``cdpo``).
    """

    settings: OARSettings
    seed: int = 0
    process_index: int = 0
    skip_zero_advantage: bool = True
    probe_warmup_steps: int = 0
    token_labeler: TokenLabeler | None = None
    reference_model: nn.Module | None = field(default=None, repr=False)
    contrast_models: tuple[nn.Module, nn.Module] | None = field(default=None, repr=False)
    calls: int = field(default=0, init=False)
    generator: torch.Generator | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.probe_warmup_steps < 0:
            raise ValueError(f"probe_warmup_steps must be >= 0, got {self.probe_warmup_steps}")
        if "oracle_labels" in self.needs and self.token_labeler is None:
            raise ValueError(f"method {self.settings.method!r} needs token_labeler= (known decisive tokens)")
        if "reference_model" in self.needs and self.reference_model is None:
            raise ValueError(
                f"method {self.settings.method!r} needs reference_model= (a frozen reference model)"
            )
        if "contrast_models" in self.needs:
            pair = self.contrast_models
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(m is not None for m in pair)):
                raise ValueError(
                    f"method {self.settings.method!r} needs contrast_models=(positive, negative): two models "
                    "tuned on correct and on wrong rollouts"
                )

    @property
    def needs(self) -> frozenset[str]:
        """What the scorer reads beyond the batch (``ScorerSpec.needs``; empty for ``"none"``): a caller passes
        ``rewards`` / ``group_ids`` for ``group_rewards`` and ``reward_fn`` for ``generation``."""
        method = self.settings.method
        return frozenset() if method == "none" else get_scorer(method).needs

    def settings_at(self, step: int) -> OARSettings:
        """The settings in force at ``step``: LT-Logits during the probe warm-up, else ``settings``."""
        if step < self.probe_warmup_steps and self.settings.method != "none":
            return dataclasses.replace(self.settings, probe="lt_logits")
        return self.settings

    def __call__(
        self,
        model: nn.Module,
        tokenizer,
        prompt_ids: Tensor,
        prompt_mask: Tensor,
        completion_ids: Tensor,
        completion_mask: Tensor,
        advantages: Tensor,
        *,
        rewards: Tensor | None = None,
        group_ids: Tensor | None = None,
        num_generations: int | None = None,
        reward_fn: Callable[[int, list[list[int]]], Sequence[float]] | None = None,
        loss_mask: Tensor | None = None,
        step: int | None = None,
        gather: Gather = _identity,
    ) -> tuple[Tensor, dict[str, float]]:
        """``A_t[B, T]`` from ``advantages[B]`` (group-normalised), and the step's metrics.

        Shapes as :func:`oar_token_advantages`. ``group_ids[B]`` default: ``arange(B) // num_generations`` when
        ``num_generations`` is given. ``loss_mask[B, T]``: the completion tokens the loss trains on when not all
        of them (tool output excluded; see :func:`oar_token_advantages`). ``step`` (default: the number of
        earlier calls) drives the warm-up.
        """
        step = self.calls if step is None else step
        self.calls += 1
        device = completion_ids.device
        if self.generator is None:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(self.seed + 7919 * self.process_index)
        if group_ids is None and num_generations is not None:
            if len(advantages) % num_generations:
                raise ValueError(f"{len(advantages)} rows do not split into groups of {num_generations}")
            group_ids = torch.arange(len(advantages), device=device) // num_generations
        skip = (advantages == 0) if self.skip_zero_advantage else None
        oracle = None
        if self.token_labeler is not None and "oracle_labels" in self.needs:
            oracle = self.token_labeler(tokenizer, prompt_ids, completion_ids, completion_mask)
        res = oar_token_advantages(
            model,
            tokenizer,
            prompt_ids,
            prompt_mask,
            completion_ids,
            completion_mask,
            advantages,
            self.settings_at(step),
            skip_rows=skip,
            generator=self.generator,
            oracle_mask=oracle,
            group_ids=group_ids,
            rewards=rewards,
            reward_fn=reward_fn,
            loss_mask=loss_mask,
            reference_model=self.reference_model if "reference_model" in self.needs else None,
            contrast_models=self.contrast_models if "contrast_models" in self.needs else None,
        )
        trained = completion_mask if loss_mask is None else completion_mask * loss_mask.to(completion_mask)
        return res.advantages, step_metrics(res, trained, skip, gather)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume the same noise: the call count and the generator's state."""
        gen = self.generator
        return {
            "calls": self.calls,
            "generator": None if gen is None else gen.get_state(),
            "device": None if gen is None else str(gen.device),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str | None = None) -> None:
        """Restore :meth:`state_dict`'s output: the generator on ``device``, by default the one it was saved
        from (a trainer passes its own device: a CUDA generator's state restores on any CUDA device)."""
        self.calls = int(state["calls"])
        if state.get("generator") is not None:
            self.generator = torch.Generator(device=device or state.get("device") or "cpu")
            self.generator.set_state(state["generator"])
