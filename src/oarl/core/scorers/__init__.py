"""Token scorers: model + sequence layout -> ``[B, L]`` importance scores (0 outside reasoning).

Every scorer has the signature ``scorer(model, input_ids, attention_mask, reasoning_mask, answer_mask,
**options) -> Tensor[B, L]``; options a scorer does not use are ignored. ``SCORERS`` is the registry
(as verl's advantage estimators): add your own with :func:`register_scorer`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from oarl.core.scorers.approximate import (
    prerank_perturbation_scores,
    refine_perturbation_scores,
    span_perturbation_scores,
)
from oarl.core.scorers.baselines import entropy_scores, oracle_scores, random_scores, uniform_scores
from oarl.core.scorers.gradient import gradient_scores
from oarl.core.scorers.gradient_variants import gradient_avg_scores, gradient_rms_scores
from oarl.core.scorers.horizon import horizon_perturbation_scores
from oarl.core.scorers.kv_linear import linear_perturbation_scores
from oarl.core.scorers.linearized import linearized_scores
from oarl.core.scorers.path import path_scores
from oarl.core.scorers.perturbation import perturbation_scores
from oarl.core.scorers.reference import naive_perturbation_scores

Scorer = Callable[..., Tensor]

SCORERS: dict[str, Scorer] = {
    "perturbation": perturbation_scores,
    "gradient": gradient_scores,
    # gradient-class variants (README "OAR-G fidelity"): noise relative to the embedding RMS, K noise draws,
    # the linearised OAR-P counterfactual, integrated gradients from the masked sequence
    "gradient_rms": gradient_rms_scores,
    "gradient_avg": gradient_avg_scores,
    "linearized": linearized_scores,
    "path": path_scores,
    "entropy": entropy_scores,
    "random": random_scores,
    "uniform": uniform_scores,
    "oracle": oracle_scores,  # needs oracle_mask: synthetic tasks with labelled tokens only
    # Approximate OAR-P for long reasoning (approximate.py): span masking, pre-rank + exact, window + refine.
    "perturbation_span": span_perturbation_scores,
    "perturbation_prerank": prerank_perturbation_scores,
    "perturbation_refine": refine_perturbation_scores,
    "perturbation_horizon": horizon_perturbation_scores,  # horizon.py: truncated propagation + span correction
    "perturbation_linear": linear_perturbation_scores,  # kv_linear.py: masked position exact, propagation linear
}


def register_scorer(name: str) -> Callable[[Scorer], Scorer]:
    """Decorator adding a scorer to :data:`SCORERS` under ``name``."""

    def deco(fn: Scorer) -> Scorer:
        SCORERS[name] = fn
        return fn

    return deco


def get_scorer(name: str) -> Scorer:
    """The scorer registered as ``name``; a ValueError lists the known names otherwise."""
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; expected one of {sorted(SCORERS)}") from None


__all__ = [
    "SCORERS",
    "entropy_scores",
    "get_scorer",
    "gradient_avg_scores",
    "gradient_rms_scores",
    "gradient_scores",
    "horizon_perturbation_scores",
    "linear_perturbation_scores",
    "linearized_scores",
    "naive_perturbation_scores",
    "oracle_scores",
    "path_scores",
    "perturbation_scores",
    "prerank_perturbation_scores",
    "random_scores",
    "refine_perturbation_scores",
    "register_scorer",
    "span_perturbation_scores",
    "uniform_scores",
]
