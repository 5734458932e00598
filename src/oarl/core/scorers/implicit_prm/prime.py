"""PRIME (arXiv 2502.01456, code PRIME-RL/PRIME): an implicit process reward model gives each token the reward
``beta * log(pi_phi(y_t | y_<t) / pi_ref(y_t | y_<t))``. Here the policy plays ``pi_phi`` and the caller's frozen
``reference_model`` plays ``pi_ref`` (PRIME trains a separate PRM online from the outcome labels; a trainer
that keeps one passes the policy's role to it by calling the scorer with it as ``model``).

With the policy as its own PRM, ``r_t`` measures how far training has moved token t, not whether it helps: with
``credit="aligned"`` it collapsed GRPO on the flag testbed (docs/credit_study.md, the amendment of the third
study), a ratchet that pushes each token further in the direction it has drifted."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.scorers.entropy.tokens import advantage_sign, token_stats
from oarl.core.scorers.registry import ScorerSpec, register_scorer

CREDITS = ("aligned", "reward", "abs")


def _check(opts) -> None:
    if opts.credit not in CREDITS:
        raise ValueError(f"prime: credit must be one of {CREDITS}, got {opts.credit!r}")
    if not (isinstance(opts.beta, (int, float)) and opts.beta > 0):
        raise ValueError(f"prime: beta must be a number > 0, got {opts.beta!r}")
    if not isinstance(opts.returns, bool):
        raise ValueError(f"prime: returns must be True or False, got {opts.returns!r}")


def implicit_rewards(model: nn.Module, reference_model: nn.Module, layout: Layout, beta: float) -> Tensor:
    """``beta * (log pi_model(y_t) - log pi_ref(y_t))`` at each reasoning token, ``[B, L]`` float32 (0 elsewhere);
    one forward of each model."""
    mask = layout.reasoning_mask.bool()
    logp, _ = token_stats(model, layout, mask)
    logp_ref, _ = token_stats(reference_model, layout, mask)
    return torch.where(mask, beta * (logp - logp_ref), torch.zeros_like(logp))


def _returns(x: Tensor, mask: Tensor) -> Tensor:
    """``sum_{s >= t} x_s`` over the ``mask`` tokens of each row (PRIME's return, gamma = 1), 0 off ``mask``."""
    x = torch.where(mask, x, torch.zeros_like(x))
    return torch.where(mask, x.flip(-1).cumsum(-1).flip(-1), torch.zeros_like(x))


@register_scorer(
    ScorerSpec(
        "prime",
        "implicit_prm",
        frozenset({"model", "reference_model", "group_rewards"}),
        "experimental",
        "forward",
        why="with the policy as its own PRM it collapses GRPO: -0.497 AUC on the flag testbed (5/5 seeds below); "
        "PRIME's separately trained PRM is not tested",
        label="PRIME",
        check=_check,
    )  # fmt: skip
)
def prime_scores(
    model: nn.Module,
    layout: Layout,
    reference_model: nn.Module | None = None,
    beta: float = 0.05,
    credit: str = "aligned",
    returns: bool = False,
) -> Tensor:
    """PRIME's implicit process reward (arXiv 2502.01456): ``r_t = beta * log(pi_phi(y_t | y_<t) / pi_ref(y_t |
    y_<t))`` at each reasoning token, ``pi_phi`` the policy (``model``), ``pi_ref`` the frozen
    ``reference_model``; ``returns=True`` scores PRIME's return ``sum_{s >= t} r_s`` (gamma 1) over the reasoning
    tokens instead. A score for OAR's gate (PRIME adds the process return to the outcome advantage; a
    multiplicative weight cannot): ``credit="aligned"`` scores ``r_t * sign(A)``, so a correct row's tokens that
    the PRM favours and a wrong row's tokens that it disfavours are boosted (as ``tree``/``ktae``); ``"reward"``:
    ``r_t``; ``"abs"``: ``|r_t|``. ``[B, L]`` float32, 0 outside ``reasoning_mask``.
    """
    if reference_model is None:
        raise ValueError("the 'prime' scorer needs reference_model= (a frozen reference model)")
    mask = layout.reasoning_mask.bool()
    sign = advantage_sign(layout, "prime")
    r = implicit_rewards(model, reference_model, layout, float(beta))
    if returns:
        r = _returns(r, mask)
    if credit == "aligned":
        r = r * sign.to(r.dtype)[:, None]
    elif credit == "abs":
        r = r.abs()
    return torch.where(mask, r, torch.zeros_like(r)).float()
