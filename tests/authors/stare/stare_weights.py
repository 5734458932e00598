# ruff: noqa
# fmt: off
# Excerpt of hp-luo/STARE (https://github.com/hp-luo/STARE), commit bffb9e79c96c318340e35402993d60548d864315,
# licensed under the Apache License, Version 2.0 (copy: LICENSE in this folder). Test fixture for oarl's
# equivalence check (docs/authors.md); not part of the oarl package.
#
# From verl/trainer/ppo/core_algos.py (Copyright 2024 Bytedance Ltd. and/or its affiliates; Copyright 2022 The
# HuggingFace Team), lines 190-257 (STAREController) and 1070-1198 (compute_stare_token_weights).
#
# Changes made by the oarl authors to make it runnable outside verl: imports reduced to torch / numpy / typing,
# and the `ActorConfig` type hint (verl.workers.config) replaced by `Any` (the function reads the config with
# `.get`, so a plain dict works).
from typing import Any, Optional

import numpy as np
import torch

ActorConfig = Any  # oarl: verl.workers.config.ActorConfig


class STAREController:
    """Closed-loop target-entropy gate and weight scheduler for STARE.

    Implements the closed-loop target-entropy gating (paper Section 4.3) and the
    optional static / adaptive weight schedule (paper Section 4.4) of STARE
    (Surprisal-guided Token-level Advantage Reweighting for policy Entropy stability).

    The trainer owns one instance, calls :meth:`update` once per training step with
    the batch-mean policy entropy ``H_bar_k``, and then forwards ``self.__dict__`` to
    the actor through ``batch.meta_info["stare_controller"]``. The actor loss reads
    the (already updated) ``gate_on``, ``reweight_w`` and ``reweight_m`` values.

    Gating (Section 4.3):
        ``gate_on = 1[H_bar_k < target_entropy]``. When the batch entropy drops below
        the target, the reweighting is activated; otherwise all weights revert to 1
        and STARE degrades to vanilla GRPO.

    Adaptive schedule (Section 4.4, only when ``adaptive=True``):
        ``W_{k+1} = clip(W_k + alpha * sgn(H_tgt - H_bar_k), [1, w_max])``
        ``M_{k+1} = clip(M_k - alpha * sgn(H_tgt - H_bar_k), [m_min, 1])``
        With ``alpha = 0`` (or ``adaptive=False``) the weights stay fixed at their
        initial values, recovering the default static-weight configuration.
    """

    def __init__(
        self,
        target_entropy: float,
        reweight_w: float,
        reweight_m: float,
        adaptive: bool = False,
        alpha: float = 0.0,
        w_max: float = 1.5,
        m_min: float = 0.5,
    ):
        # Static configuration.
        self.target_entropy = float(target_entropy)
        self.adaptive = bool(adaptive)
        self.alpha = float(alpha)
        self.w_max = float(w_max)
        self.m_min = float(m_min)

        # Mutable state forwarded to the actor each step via ``self.__dict__``.
        self.reweight_w = float(reweight_w)
        self.reweight_m = float(reweight_m)
        self.gate_on = True
        self.current_ent = float("nan")

    def update(self, current_ent: float):
        """Update the gate and (optionally) the adaptive weights from batch entropy.

        Args:
            current_ent (float): Batch-mean policy entropy ``H_bar_k`` at this step.
        """
        if not np.isfinite(current_ent):
            print("Warning: STAREController.update() current_ent is NaN/Inf, skipping update.")
            return

        self.current_ent = float(current_ent)
        # Closed-loop target-entropy gate: activate only when below the target band.
        self.gate_on = bool(current_ent < self.target_entropy)

        if not self.adaptive or self.alpha == 0.0:
            return

        # sgn(H_tgt - H_bar_k): +1 when entropy is below target (intensify), else -1.
        sign = float(np.sign(self.target_entropy - current_ent))
        self.reweight_w = float(np.clip(self.reweight_w + self.alpha * sign, 1.0, self.w_max))
        self.reweight_m = float(np.clip(self.reweight_m - self.alpha * sign, self.m_min, 1.0))


def compute_stare_token_weights(
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    config: Optional[ActorConfig],
    stare_ctrl_dict: Optional[dict[str, Any]] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute STARE per-token advantage-reweighting factors (paper Section 4).

    Implements surprisal-guided entropy-critical token partitioning (Section 4.1)
    and advantage-conditioned token-level credit rebalancing (Section 4.2), gated by
    the closed-loop target-entropy signal (Section 4.3). The returned weights ``omega``
    multiply the per-token clipped surrogate, i.e. ``J_STARE = (1/N) sum omega * J_GRPO``.

    Token partitioning:
        Split response tokens by trajectory-level advantage sign into
        ``T+ = {A_i > 0}`` and ``T- = {A_i < 0}``. Within each set, rank tokens in
        descending order of surprisal ``s_{i,t} = -ln pi_theta(o_{i,t})`` and select the
        top-``P%`` to form the entropy-critical sets ``L+`` (and ``L-`` for variant C2).

    Weighting:
        - Variant O1 (default, one-sided amplification):
          ``omega = W (> 1)`` on ``L+``, else ``1``.
        - Variant C2 (dual-sided regulation):
          ``omega = W`` on ``L+``, ``omega = M (< 1)`` on ``L-``, else ``1``.

    Gating:
        When the closed-loop gate is off (batch entropy at or above the target), all
        weights revert to ``1`` and STARE degrades to vanilla GRPO.

    Args:
        log_prob: Current-policy token log-probs ``(batch_size, response_length)``.
            Surprisal is ``-log_prob`` (detached for selection).
        advantages: Token-level advantages ``(batch_size, response_length)`` (the
            shared trajectory-level GRPO advantage broadcast over tokens).
        response_mask: Response-token mask ``(batch_size, response_length)``.
        config: Actor config; reads the ``stare`` sub-config when present.
        stare_ctrl_dict: ``STAREController.__dict__`` forwarded by the trainer through
            ``batch.meta_info["stare_controller"]``; supplies the live ``gate_on``,
            ``reweight_w`` and ``reweight_m`` (after adaptive updates).

    Returns:
        weights: ``(batch_size, response_length)`` reweighting factors (default 1.0).
        stats: scalar metrics describing the selection and the applied weights.
    """
    weights = torch.ones_like(advantages)
    stats: dict[str, float] = {}

    stare_cfg = config.get("stare", None) if config is not None else None
    if stare_cfg is None or not bool(stare_cfg.get("enabled", False)):
        return weights, stats

    variant = str(stare_cfg.get("variant", "O1")).upper()
    if variant not in {"O1", "C2"}:
        raise ValueError(f"Unsupported STARE variant: {variant}. Expected 'O1' or 'C2'.")

    top_ratio = float(stare_cfg.get("top_p_ratio", 0.1))
    if not 0.0 <= top_ratio <= 1.0:
        raise ValueError(f"Invalid STARE top_p_ratio: {top_ratio}. Expected a value in [0, 1].")

    # Default to static weights from config; override with the controller's live
    # (possibly adaptive) values and the closed-loop gate when provided.
    positive_weight = float(stare_cfg.get("reweight_w", 1.1))
    negative_weight = float(stare_cfg.get("reweight_m", 0.9))
    target_entropy = float(stare_cfg.get("target_entropy", 0.3))
    gate_on = True
    current_entropy = float("nan")
    if stare_ctrl_dict is not None:
        gate_on = bool(stare_ctrl_dict.get("gate_on", True))
        positive_weight = float(stare_ctrl_dict.get("reweight_w", positive_weight))
        negative_weight = float(stare_ctrl_dict.get("reweight_m", negative_weight))
        target_entropy = float(stare_ctrl_dict.get("target_entropy", target_entropy))
        current_entropy = float(stare_ctrl_dict.get("current_ent", current_entropy))

    valid = response_mask > 0
    valid_count = valid.float().sum().clamp_min(1.0)
    positive_candidates = valid & (advantages > 0)
    negative_candidates = valid & (advantages < 0)

    # Surprisal s = -ln pi_theta(o); detached because it only drives token selection.
    surprisal = -log_prob.detach()

    def top_surprisal_mask(candidate_mask: torch.Tensor) -> torch.Tensor:
        """Select the top-``P%`` highest-surprisal tokens within ``candidate_mask``."""
        candidate_count = int(candidate_mask.sum().item())
        selected = torch.zeros_like(candidate_mask, dtype=torch.bool)
        if candidate_count == 0 or top_ratio <= 0.0:
            return selected

        # ceil(candidate_count * top_ratio), at least 1 token.
        k = max(1, int(candidate_count * top_ratio + 0.999999))
        k = min(k, candidate_count)
        candidate_values = surprisal[candidate_mask]
        _, topk_local_idx = torch.topk(candidate_values, k=k, largest=True)
        flat_candidate_idx = candidate_mask.reshape(-1).nonzero(as_tuple=False).squeeze(-1)
        flat_selected_idx = flat_candidate_idx[topk_local_idx]
        selected.reshape(-1)[flat_selected_idx] = True
        return selected

    l_plus = top_surprisal_mask(positive_candidates)
    l_minus = (
        top_surprisal_mask(negative_candidates) if variant == "C2" else torch.zeros_like(valid, dtype=torch.bool)
    )

    # Apply reweighting only when the closed-loop gate is active.
    if gate_on:
        weights = torch.where(l_plus, torch.full_like(weights, positive_weight), weights)
        if variant == "C2":
            weights = torch.where(l_minus, torch.full_like(weights, negative_weight), weights)

    stats.update(
        {
            "stare/gate_on": float(gate_on),
            "stare/controller_entropy": current_entropy if np.isfinite(current_entropy) else 0.0,
            "stare/target_entropy": target_entropy,
            "stare/top_ratio": top_ratio,
            "stare/positive_candidate_ratio": float(positive_candidates.float().sum().item() / valid_count.item()),
            "stare/negative_candidate_ratio": float(negative_candidates.float().sum().item() / valid_count.item()),
            "stare/positive_reweight_ratio": float((l_plus.float() * valid.float()).sum().item() / valid_count.item()),
            "stare/negative_reweight_ratio": float(
                (l_minus.float() * valid.float()).sum().item() / valid_count.item()
            ),
            "stare/mean_weight": float((weights * valid.float()).sum().item() / valid_count.item()),
            "stare/positive_weight": positive_weight,
            "stare/negative_weight": negative_weight,
            "stare/variant_is_c2": 0.0 if variant == "O1" else 1.0,
        }
    )
    return weights, stats
