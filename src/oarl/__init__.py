"""oarl: Outcome-grounded Advantage Reshaping (OAR) for RL of reasoning models.

Pipeline: rollout -> score (``oarl.scorers``, reading ``oarl.probes``) -> gate (``oarl.gating``) -> loss
(``reshape_advantages``). The math never imports trl; the TRL glue lives in ``oarl.trainer``.
"""

from oarl.advantages import reshape_advantages
from oarl.diagnostics import ess_ratio, oracle_recall, top_mass_share
from oarl.gating import bilevel_weights
from oarl.probes import PROBES, outcome_probe
from oarl.scorers import SCORERS, get_scorer, gradient_scores, perturbation_scores

__version__ = "0.1.0"

__all__ = [
    "OARConfig",
    "OARGRPOTrainer",
    "PROBES",
    "SCORERS",
    "bilevel_weights",
    "ess_ratio",
    "get_scorer",
    "gradient_scores",
    "oracle_recall",
    "outcome_probe",
    "perturbation_scores",
    "reshape_advantages",
    "top_mass_share",
]


def __getattr__(name: str):
    # The TRL glue is imported lazily so the math core works (and imports fast) without trl.
    if name in ("OARConfig", "OARGRPOTrainer"):
        from oarl import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'oarl' has no attribute {name!r}")
