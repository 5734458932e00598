"""oarl: Outcome-grounded Advantage Reshaping (OAR) for RL of reasoning models.

Pipeline: rollout -> answer spans (``oarl.batch.spans``) -> scores (``oarl.core.scorers`` reading
``oarl.core.probes``) -> gate (``oarl.core.gating``) -> token advantages (``oarl.core.advantages``) -> the
trainer's loss (``oarl.integrations.trl``). That is the library, what ``pip install oarl`` brings (torch,
transformers, trl, numpy): ``oarl.core`` is torch functions (transformers only through ``core/model.py``, no
trl), ``oarl.batch`` the trainer-independent step, ``oarl.integrations`` TRL's trainer around it. The lab
(``oarl.lab``: testbed, studies, plots, real models) needs ``pip install "oarl[lab]"`` and is never
imported by the library; the ``oarl`` command (``oarl.cli``) runs it. The names below are the library's;
``OARConfig`` and ``OARGRPOTrainer`` import TRL on first use, so ``import oarl`` stays light.
"""

from oarl.core.advantages import reshape_advantages
from oarl.core.diagnostics import ess_ratio, oracle_recall, top_mass_share
from oarl.core.gating import bilevel_weights
from oarl.core.layout import Layout
from oarl.core.probes import PROBES, outcome_probe
from oarl.core.scorers import SCORERS, get_scorer, gradient_scores, perturbation_scores

__version__ = "0.1.0"

__all__ = [
    "OARConfig",
    "Layout",
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
        from oarl.integrations import trl

        return getattr(trl, name)
    raise AttributeError(f"module 'oarl' has no attribute {name!r}")
