"""TRL glue: ``OARConfig(GRPOConfig)`` and ``OARGRPOTrainer(GRPOTrainer)``. Swap the two names and get OAR.

The OAR step itself is :class:`oarl.batch.step.OARStep` (settings, generator, probe warm-up, zero-advantage
skip, group layout, metrics), the object any trainer calls. ``OARGRPOTrainer`` keeps only TRL's side: it
overrides four of ``GRPOTrainer``'s private methods, all TRL 1.16 names:

- ``_generate_and_score_completions``: after TRL has generated, rewarded and group-normalised, the step turns
  the ``[B]`` advantages into ``[B, T]`` token advantages, which TRL's loss accepts as they are;
- ``_calculate_rewards``: keeps TRL's gathered per-function rewards for the scorers that need
  ``group_rewards``;
- ``_save_rng_state`` / ``_load_rng_state``: the step's generator state in each checkpoint, so a resumed run
  draws the same noise.

Rows whose advantage TRL computed as exactly zero (e.g. every completion of a group rewarded alike) are never
scored: ``A_t = A * w_t`` is zero for any weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from trl import GRPOConfig, GRPOTrainer
from trl.distributed import DistributedBackend
from trl.models.utils import unwrap_model_for_generation

from oarl.batch.reshape import context_limit
from oarl.batch.rollout import Rollout, TokenLabeler
from oarl.batch.settings import TOKENIZER_FIELDS, OARSettings, config_name, model_free
from oarl.batch.step import OARStep
from oarl.core.scorers import get_scorer
from oarl.integrations.trl.context import RewardFn, check_reward_funcs, local_groups, trl_reward_fn
from oarl.integrations.trl.inputs import check_prompts
from oarl.integrations.trl.modes import (
    check_batch_images,
    check_generation_rollouts,
    check_loss_mode,
    check_vision,
)

logger = logging.getLogger(__name__)
#: Saved next to transformers' ``rng_state.pth`` in each checkpoint (one per process, ``_{rank}.pth``):
#: ``OARStep.state_dict()``, the state of the OAR-G noise / random-score generator (older checkpoints: the
#: generator's state tensor alone).
OAR_RNG_PREFIX = "oar_rng_state"


#: What the trainer can give a scorer (``ScorerSpec.needs``); ``oracle_labels`` only with a ``token_labeler``.
#: ``group_rewards``: TRL's rewards (the weighted sum over reward functions, NaN where unscorable) and groups of
#: ``num_generations`` consecutive rows, as TRL's sampler orders them. ``generation``: the policy samples and
#: TRL's reward functions (plain, synchronous callables on text prompts) reward what it samples.
#: ``tokenizer`` is TRL's processing class; ``reference_model`` is ``oar_reference_model=`` when given, else
#: TRL's own ``ref_model`` (it exists only with ``beta > 0`` and no PEFT); ``contrast_models`` only when given
#: as ``oar_contrast_models=``.
PROVIDED = frozenset(
    {
        "model",
        "gradients",
        "randomness",
        "oracle_labels",
        "group_rewards",
        "generation",
        "tokenizer",
        "reference_model",
        "contrast_models",
    }
)


def check_needs(
    method: str, needs: frozenset[str], has_reference: bool = False, has_contrast: bool = False
) -> None:
    """Refuse, before training, a scorer that reads something this trainer does not provide (``OARStep`` itself
    refuses ``oracle_labels`` without a ``token_labeler``)."""
    missing = sorted(needs - PROVIDED)
    if missing:
        raise ValueError(f"oar_method={method!r} needs {missing}, which OARGRPOTrainer does not provide yet")
    if "reference_model" in needs and not has_reference:
        raise ValueError(
            f"oar_method={method!r} needs a reference model: pass OARGRPOTrainer(..., oar_reference_model=...) "
            "(a frozen model), or set beta > 0 so that TRL loads its ref_model (with PEFT TRL keeps none)"
        )
    if "contrast_models" in needs and not has_contrast:
        raise ValueError(
            f"oar_method={method!r} needs oar_contrast_models=(positive, negative): two models tuned on correct "
            "and on wrong rollouts (OARGRPOTrainer(..., oar_contrast_models=...), or OARStep(contrast_models=...))"
        )


def check_sharding(method: str, zero_stage: int, fsdp: bool, gather_zero3: bool) -> None:
    """Refuse, before training, a sharding under which OAR's scorer cannot run on the policy.

    Under ZeRO-3 each process holds a slice of every weight, and each module's forward is an all-gather that
    every process must join in the same order. The scorers run a data-dependent number of forwards per process
    (rows, chunks, skipped groups), so they run on the full weights gathered once per step, as TRL's generation
    does (``ds3_gather_for_generation``); with that off there is no safe way to score. FSDP is not supported.
    """
    if model_free(method):  # nothing to gather when parameters are sharded
        return
    if fsdp:
        raise ValueError(
            f"oar_method={method!r} does not run under FSDP (the scorer needs the full weights). Use DeepSpeed "
            "ZeRO-2 or ZeRO-3 (recipes/accelerate/zero2.yaml, zero3.yaml), DDP, or oar_method='none'."
        )
    if zero_stage == 3 and not gather_zero3:
        raise ValueError(
            f"oar_method={method!r} under DeepSpeed ZeRO-3 scores on the full weights gathered on every GPU once per "
            "step (as TRL's generation does), but ds3_gather_for_generation=False says they do not fit. Use ZeRO-2 "
            "(recipes/accelerate/zero2.yaml) with LoRA or more GPUs, set ds3_gather_for_generation=True, or "
            "oar_method='none' (plain GRPO)."
        )


def _with_oar_fields(cls: type) -> type:
    """Add an ``oar_<name>`` field for every :class:`OARSettings` field (same type, default and help), before
    ``@dataclass`` reads the class: a new knob of OARSettings is a new ``OARConfig`` field without an edit here.
    ``mask_token_id`` is the exception (:data:`~oarl.batch.settings.TOKENIZER_FIELDS`): see ``oar_mask_token``."""
    hints = typing.get_type_hints(OARSettings)
    for f in dataclasses.fields(OARSettings):
        if f.name in TOKENIZER_FIELDS:
            continue
        name = config_name(f.name)
        cls.__annotations__[name] = hints[f.name]
        setattr(cls, name, field(default=f.default, metadata=dict(f.metadata)))
    return cls


@dataclass
@_with_oar_fields
class OARConfig(GRPOConfig):
    """GRPOConfig plus OAR's settings: an ``oar_<name>`` field for each field of
    :class:`~oarl.batch.settings.OARSettings` (its default and help), all validated at construction, before any
    model is loaded."""

    # Trainer-only: OARSettings.mask_token_id is a token id, which needs the tokenizer; a config is written before
    # the tokenizer loads, so it names the token by text or id here and the trainer resolves it
    # (resolve_mask_token). It cannot be an OARSettings field without OARSettings depending on a tokenizer.
    oar_mask_token: str | None = field(
        default=None, metadata={"help": "OAR-P replacement token (text or id); default: the pad token"}
    )

    def __post_init__(self) -> None:
        settings = config_settings(self, mask_token_id=None)  # validates every oar_* field first
        self.oar_scorer_options = settings.scorer_options  # a JSON string read once, as a dict
        check_loss_mode(self.oar_method, self.loss_type, self.importance_sampling_level)
        super().__post_init__()


def config_settings(args: OARConfig, mask_token_id: int | None) -> OARSettings:
    """The :class:`OARSettings` an ``OARConfig`` describes (``mask_token_id``: ``oar_mask_token`` resolved)."""
    given = {f.name: getattr(args, config_name(f.name)) for f in dataclasses.fields(OARSettings)}
    return OARSettings(**{**given, "mask_token_id": mask_token_id})


def config_fields(settings: OARSettings) -> dict[str, Any]:
    """The ``OARConfig`` keyword arguments of ``settings`` (``mask_token_id`` as ``oar_mask_token``, an id)."""
    return {config_name(f.name): getattr(settings, f.name) for f in dataclasses.fields(OARSettings)}


def resolve_mask_token(tokenizer, mask_token: str | int | None) -> int | None:
    """Token id for OAR-P masking: the pad token by default, else the given id or token text."""
    if mask_token is None:
        return tokenizer.pad_token_id
    if isinstance(mask_token, int) or str(mask_token).isdigit():
        token_id = int(mask_token)
        if not 0 <= token_id < len(tokenizer):
            raise ValueError(
                f"oar_mask_token id {token_id} is outside the vocabulary (size {len(tokenizer)})"
            )
        return token_id
    token_id = tokenizer.convert_tokens_to_ids(mask_token)
    if token_id is None or (token_id == tokenizer.unk_token_id and mask_token != tokenizer.unk_token):
        raise ValueError(f"oar_mask_token {mask_token!r} is not a single token of the tokenizer")
    return token_id


class OARGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages are reshaped per token by OAR (see :class:`OARConfig`)."""

    def __init__(
        self,
        *args,
        token_labeler: TokenLabeler | None = None,
        oar_contrast_models: tuple[nn.Module, nn.Module] | None = None,
        oar_reference_model: nn.Module | None = None,
        **kwargs,
    ) -> None:
        """As ``GRPOTrainer``, plus ``token_labeler(tokenizer, prompt_ids, completion_ids, completion_mask) ->
        [B, T] bool``: the known decisive completion tokens, read only by scorers that need ``oracle_labels``
        (testbed tasks provide one; real data has none); ``oar_contrast_models = (positive, negative)``, read only
        by scorers that need ``contrast_models`` (``cdpo``), on the policy's device, frozen;
        ``oar_reference_model``, read only by scorers that need ``reference_model`` (``prime``), frozen, moved to
        the policy's device; without it they read TRL's ``ref_model`` (``beta > 0``, no PEFT). Either model given
        to a method that does not read it is refused."""
        check_prompts(kwargs.get("train_dataset", args[3] if len(args) > 3 else None))
        super().__init__(*args, **kwargs)
        self.token_labeler = token_labeler
        if not isinstance(self.args, OARConfig):
            raise TypeError("OARGRPOTrainer needs args=OARConfig(...) (a GRPOConfig with the oar_* fields)")
        needs = get_scorer(self.args.oar_method).needs
        for given, need, arg in (
            (oar_reference_model, "reference_model", "oar_reference_model"),
            (oar_contrast_models, "contrast_models", "oar_contrast_models"),
        ):
            if given is not None and need not in needs:
                raise ValueError(
                    f"{arg}= given, but oar_method={self.args.oar_method!r} does not read {need}"
                )
        check_needs(
            self.args.oar_method,
            needs,
            has_reference=oar_reference_model is not None or getattr(self, "ref_model", None) is not None,
            has_contrast=oar_contrast_models is not None,
        )
        if oar_reference_model is not None:
            oar_reference_model = oar_reference_model.to(self.accelerator.device).eval().requires_grad_(False)
        self._oar_mask_token_id = resolve_mask_token(self._tokenizer, self.args.oar_mask_token)
        self._oar_step = OARStep(
            config_settings(self.args, self._oar_mask_token_id),
            seed=self.args.seed,
            process_index=self.accelerator.process_index,
            token_labeler=token_labeler,
            reference_model=(
                None
                if "reference_model" not in needs
                else oar_reference_model
                if oar_reference_model is not None
                else self.accelerator.unwrap_model(self.ref_model)
            ),
            contrast_models=oar_contrast_models if "contrast_models" in needs else None,
        )
        self._oar_needs = self._oar_step.needs
        check_vision(self.args.oar_method, self._is_vlm, model_free(self.args.oar_method))
        if "generation" in self._oar_needs:
            check_reward_funcs(self.args.oar_method, self.reward_funcs)
            check_generation_rollouts(
                self.args.oar_method, self.tools, self.environment_factories, self.rollout_func
            )
        backend = DistributedBackend(self.accelerator)
        self._oar_zero3 = backend.is_zero3
        if self._oar_zero3 and self._oar_needs & {"reference_model", "contrast_models"}:
            raise ValueError(
                f"oar_method={self.args.oar_method!r} reads a second model, which is not gathered under ZeRO-3; "
                "use ZeRO-2 or a single process"
            )
        check_sharding(
            self.args.oar_method,
            backend.zero_stage,
            backend.fsdp_version is not None,
            self.args.ds3_gather_for_generation,
        )
        limit = context_limit(self.accelerator.unwrap_model(self.model))
        if limit is not None and self.args.max_completion_length > limit:
            logger.warning(
                "max_completion_length %d exceeds the model's context (%d): rows longer than the context are "
                "not scored (uniform weights, counted in oar/too_long_frac)",
                self.args.max_completion_length,
                limit,
            )

    @contextlib.contextmanager
    def _oar_scoring_model(self, method: str) -> Iterator[nn.Module]:
        """The policy to score with: the unwrapped model; under ZeRO-3 with its weights gathered on every process
        and DeepSpeed's hooks removed for the duration (TRL's ``unwrap_model_for_generation``), so that each
        process's own number of forwards needs no collective."""
        if self._oar_zero3 and not model_free(method):
            with unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=True,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as model:
                yield model
        else:
            yield self.accelerator.unwrap_model(self.model)

    def _oar_rng_file(self, folder: str) -> str:
        return os.path.join(folder, f"{OAR_RNG_PREFIX}_{self.args.process_index}.pth")

    def _save_rng_state(self, output_dir: str) -> None:
        """transformers' RNG states plus the OAR step's generator, so a resumed run draws the same noise."""
        super()._save_rng_state(output_dir)
        if self._oar_step.generator is not None:
            torch.save(self._oar_step.state_dict(), self._oar_rng_file(output_dir))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        path = self._oar_rng_file(checkpoint) if checkpoint else None
        if path and os.path.isfile(path):
            state = torch.load(path, weights_only=True)
            if isinstance(state, torch.Tensor):  # written before OARStep: the generator's state alone
                state = {"calls": self.state.global_step, "generator": state}
            self._oar_step.load_state_dict(state, device=self.accelerator.device)

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        if mode == "eval":
            return out  # evaluation does not update the policy: no need to pay for scoring
        check_batch_images(self.args.oar_method, out, model_free(self.args.oar_method))
        group_ids = rewards = None
        if "group_rewards" in self._oar_needs:
            group_ids, rewards = self._oar_group_context(len(out["advantages"]), out["advantages"].device)
        reward_fn = (
            self._oar_reward_fn(inputs, out["prompt_mask"]) if "generation" in self._oar_needs else None
        )
        rollout = Rollout(
            out["prompt_ids"],
            out["prompt_mask"],
            out["completion_ids"],
            out["completion_mask"],
            out["advantages"],
            rewards=rewards,
            group_ids=group_ids,
            loss_mask=out.get("tool_mask"),  # tool calling / rollout_func's env_mask: 0 on their output
            reward_fn=reward_fn,
        )
        with self._oar_scoring_model(self.args.oar_method) as model:
            out["advantages"], metrics = self._oar_step(
                model, self._tokenizer, rollout, step=self.state.global_step, gather=self.accelerator.gather
            )
        self._log_oar(mode, metrics)
        return out

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """TRL's rewards, ``[N, F]`` gathered over processes; kept for the scorers that need ``group_rewards``."""
        per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._oar_rewards_per_func = per_func
        return per_func

    def _oar_group_context(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``group_ids[n]``, ``rewards[n]`` of this process's ``n`` rows (:func:`.context.local_groups`)."""
        return local_groups(
            self._oar_rewards_per_func.to(device),
            self.reward_weights.to(device),
            self.accelerator.process_index,
            n,
            self.num_generations,
            self.args.oar_method,
        )

    def _oar_reward_fn(self, inputs: list[dict], prompt_mask: torch.Tensor) -> RewardFn:
        """``reward_fn(row, sequences)`` from TRL's reward functions (:func:`.context.trl_reward_fn`)."""
        return trl_reward_fn(
            inputs,
            prompt_mask,
            self._tokenizer,
            self.reward_funcs,
            self.reward_weights,
            self.state,
            self.args.oar_method,
        )

    def _log_oar(self, mode: str, values: dict[str, float]) -> None:
        """Append the step's ``oar/*`` metrics (already reduced over processes) to TRL's logged metrics."""
        for key, value in values.items():
            self._metrics[mode][key].append(value)
        # Rows whose reshaping fell back: non-finite scores/weights -> uniform weights (plain GRPO), non-finite
        # incoming sequence advantage -> 0. Both should stay 0; a warning says when they are not.
        nonfinite, bad_adv = values["oar/nonfinite_fallback"], values["oar/nonfinite_advantage"]
        if (nonfinite or bad_adv) and self.accelerator.is_main_process:
            logger.warning(
                "step %d: %d row(s) had non-finite OAR scores (uniform weights used) and %d row(s) a non-finite "
                "advantage (set to 0)",
                self.state.global_step,
                int(nonfinite),
                int(bad_adv),
            )
