"""Token scorers: model + sequence layout -> ``[B, L]`` importance scores (0 outside reasoning).

Every scorer is declared where it is defined with :func:`register_scorer` (:mod:`.registry`): its family,
status, cost class, what it reads (``needs``) and its options (the keyword parameters of its signature, turned
into a frozen dataclass). ``SCORERS`` maps each name to its :class:`ScorerSpec`, which is callable as
``spec(model, layout, generator=..., oracle_mask=..., **options)`` (``layout``: a
:class:`~oarl.core.layout.Layout` or its four ``[B, L]`` tensors) and refuses options the scorer does not take.
``docs/scorers.md`` is generated from it (``oarl scorers``).
"""

from __future__ import annotations

# Imported for their registrations, family by family: the registry (and every list made from it) keeps this order.
# isort: off
from oarl.core.scorers.controls.grpo import grpo_scores  # "none" (plain GRPO) first: methods() lists it first
from oarl.core.scorers.masking.exact import perturbation_scores
from oarl.core.scorers.masking.span import (
    prerank_perturbation_scores,
    refine_perturbation_scores,
    span_perturbation_scores,
)
from oarl.core.scorers.masking.horizon import horizon_perturbation_scores
from oarl.core.scorers.masking.linear import linear_perturbation_scores
from oarl.core.scorers.gradient.oar_g import gradient_scores
from oarl.core.scorers.gradient.variants import gradient_avg_scores, gradient_rms_scores
from oarl.core.scorers.gradient.linearized import linearized_scores
from oarl.core.scorers.gradient.path import path_scores
from oarl.core.scorers.controls.baselines import entropy_scores, oracle_scores, random_scores, uniform_scores
from oarl.core.scorers.group.tree import tree_scores
from oarl.core.scorers.group.ktae import ktae_scores
from oarl.core.scorers.information.info_gain import info_gain_scores
from oarl.core.scorers.resampling.resample import resample_scores
from oarl.core.scorers.entropy.gtpo import gtpo_scores
from oarl.core.scorers.entropy.high_entropy import high_entropy_scores
from oarl.core.scorers.surprisal.stare import stare_scores
from oarl.core.scorers.implicit_prm.prime import prime_scores
from oarl.core.scorers.contrastive.cdpo import cdpo_scores
from oarl.core.scorers.planning.hicra import hicra_scores
from oarl.core.scorers.attention.anchor import anchor_scores
from oarl.core.scorers.reference.naive import naive_perturbation_scores

# isort: on
from oarl.core.scorers.registry import (
    COSTS,
    NEEDS,
    OUTPUTS,
    SCORERS,
    STATUSES,
    ScorerSpec,
    get_scorer,
    model_free_scorers,
    register_scorer,
    shared_options,
    unregister_scorer,
    upcast_scorers,
)

__all__ = [
    "anchor_scores",
    "COSTS",
    "NEEDS",
    "OUTPUTS",
    "SCORERS",
    "STATUSES",
    "ScorerSpec",
    "cdpo_scores",
    "entropy_scores",
    "get_scorer",
    "gradient_avg_scores",
    "gradient_rms_scores",
    "gradient_scores",
    "grpo_scores",
    "gtpo_scores",
    "hicra_scores",
    "high_entropy_scores",
    "info_gain_scores",
    "horizon_perturbation_scores",
    "linear_perturbation_scores",
    "linearized_scores",
    "model_free_scorers",
    "naive_perturbation_scores",
    "oracle_scores",
    "path_scores",
    "perturbation_scores",
    "prime_scores",
    "prerank_perturbation_scores",
    "random_scores",
    "refine_perturbation_scores",
    "resample_scores",
    "register_scorer",
    "shared_options",
    "tree_scores",
    "ktae_scores",
    "span_perturbation_scores",
    "stare_scores",
    "uniform_scores",
    "unregister_scorer",
    "upcast_scorers",
]
