"""The OAR step as one object a trainer calls: a :class:`~oarl.batch.rollout.Rollout` -> ``A_t[B, T]`` plus
its metrics.

:func:`oarl.batch.reshape.oar_token_advantages` is the pure function (spans -> scores -> gate -> ``A_t = A·w_t``);
:class:`OARStep` adds what every trainer would otherwise rewrite around it: the scorer's random generator
(seeded once, with ``state_dict`` / ``load_state_dict`` for checkpoints), the settings in force at a step (the
probe warm-up: LT-Logits for the first ``settings.probe_warmup_steps`` steps), the oracle labels of a
``token_labeler`` and the ``oar/*`` metrics. A custom loop (``examples/grpo_oar.py``), a verl actor worker or
OpenRLHF calls it after its group normalisation::

    step = OARStep(OARSettings(method="gradient"), seed=0)
    rollout = Rollout(prompt_ids, prompt_mask, completion_ids, completion_mask, advantages,
                      rewards=rewards, num_generations=8)
    token_adv, metrics = step(model, tokenizer, rollout)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from oarl.batch.reshape import OARBatchResult, oar_token_advantages
from oarl.batch.rollout import Rollout, TokenLabeler
from oarl.batch.settings import OARSettings
from oarl.batch.span_watch import SpanWatch
from oarl.core.scorers import get_scorer

#: ``gather(t) -> t`` across processes (``accelerator.gather``); the identity on one process.
Gather = Callable[[Tensor], Tensor]


def _identity(t: Tensor) -> Tensor:
    return t


def step_metrics(res: OARBatchResult, trained: Tensor, gather: Gather = _identity) -> dict[str, float]:
    """The ``oar/*`` metrics of one step, reduced over processes by ``gather`` (means of rows, sums of counts).

    ``trained[B, T]``: the completion tokens the loss trains on (``completion_mask``, times a tool mask where
    there is one). ``oar/weight_mean`` is Σ w_t / T over them (1.0 when the gate kept the mass),
    ``oar/ess_ratio`` and ``oar/top10_adv_share`` the paper's diagnostics averaged over scored rows.
    """
    mask = trained.bool()
    w_sum = (res.weights * mask).sum().reshape(1)
    n_tok = mask.sum().reshape(1).float()
    w_max = res.weights.where(mask, torch.zeros_like(res.weights)).amax().reshape(1)
    skipped = torch.zeros_like(res.scored) if res.skipped is None else res.skipped.to(res.scored.device)
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
    """One OAR step with its state: settings, generator, call counter; see the module docstring.

    ``seed`` seeds the generator on first use (``seed + 7919 * process_index``, as ``OARGRPOTrainer`` does, so
    the two draw the same noise on the same batch). ``token_labeler`` (required by the ``oracle`` scorer) labels
    each rollout that carries no ``oracle_labels``;
    ``reference_model`` (a frozen model) is required by the scorers that need ``reference_model`` (``prime``) and
    ``contrast_models = (positive, negative)`` by those that need ``contrast_models`` (``cdpo``).
    """

    settings: OARSettings
    seed: int = 0
    process_index: int = 0
    token_labeler: TokenLabeler | None = None
    reference_model: nn.Module | None = field(default=None, repr=False)
    contrast_models: tuple[nn.Module, nn.Module] | None = field(default=None, repr=False)
    calls: int = field(default=0, init=False)
    generator: torch.Generator | None = field(default=None, init=False, repr=False)
    span_watch: SpanWatch | None = field(default=None, init=False, repr=False)
    last_metrics: dict[str, float] = field(default_factory=dict, init=False, repr=False)  # the last call's

    def __post_init__(self) -> None:
        s = self.settings
        if not get_scorer(s.method).uniform:  # warns once (or raises) when most rows have no answer span
            self.span_watch = SpanWatch(
                s.no_span_warn_frac, s.no_span_window, s.no_span_error, s.span_finders
            )
        if "oracle_labels" in self.needs and self.token_labeler is None:
            raise ValueError(
                f"method {self.settings.method!r} needs token_labeler= (known decisive tokens; testbed tasks only)"
            )
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
        """What the scorer reads beyond the batch (``ScorerSpec.needs``; empty for plain GRPO): a caller gives
        the rollout ``rewards`` and groups for ``group_rewards``, and ``reward_fn`` for ``generation``."""
        return get_scorer(self.settings.method).needs

    def settings_at(self, step: int) -> OARSettings:
        """The settings in force at ``step``: LT-Logits during the probe warm-up, else ``settings``."""
        if step < self.settings.probe_warmup_steps:
            return dataclasses.replace(self.settings, probe="lt_logits")
        return self.settings

    def __call__(
        self,
        model: nn.Module,
        tokenizer,
        rollout: Rollout,
        *,
        step: int | None = None,
        gather: Gather = _identity,
    ) -> tuple[Tensor, dict[str, float]]:
        """``A_t[B, T]`` from ``rollout.advantages[B]`` (group-normalised), and the step's metrics.

        ``step`` (the trainer's global step; default: the number of earlier calls) drives the warm-up;
        ``gather`` reduces the metrics over processes (``accelerator.gather``). Neither is the batch's: they
        belong to the loop that calls the step.
        """
        step = self.calls if step is None else step
        self.calls += 1
        if self.generator is None:
            self.generator = torch.Generator(device=rollout.completion_ids.device)
            self.generator.manual_seed(self.seed + 7919 * self.process_index)
        if rollout.oracle_labels is None and self.token_labeler is not None and "oracle_labels" in self.needs:
            labels = self.token_labeler(
                tokenizer, rollout.prompt_ids, rollout.completion_ids, rollout.completion_mask
            )
            rollout = dataclasses.replace(rollout, oracle_labels=labels)
        res = oar_token_advantages(
            model,
            tokenizer,
            rollout,
            self.settings_at(step),
            self.generator,
            reference_model=self.reference_model,
            contrast_models=self.contrast_models,
        )
        metrics = step_metrics(res, rollout.trained, gather)
        if self.span_watch is not None:
            self.span_watch.update(metrics["oar/no_span_frac"])
        self.last_metrics = metrics
        return res.advantages, metrics

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
