"""Plain GRPO as a registered scorer, ``"none"``: every token keeps weight 1.

It is declared ``uniform``: whatever is special about plain GRPO (no model call, no gate, no row scored, ESS 1,
no scorer time, every TRL loss mode and sharding allowed) is read from that flag, never from its name.
"""

from __future__ import annotations

from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.registry import ScorerSpec, register_scorer


@register_scorer(ScorerSpec("none", "controls", frozenset(), "control", "none", label="GRPO", uniform=True))
def grpo_scores(
    model: nn.Module | None,
    layout: Layout,
) -> Tensor:
    """Plain GRPO: weight 1 on every token by definition (``uniform``: callers skip scoring and the gate); its
    scores, where asked for, are equal at every reasoning token. ``[B, L]``."""
    return layout.reasoning_mask.float()
