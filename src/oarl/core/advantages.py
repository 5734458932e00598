"""From sequence advantages to per-token advantages: ``A_t = A * w_t``."""

from __future__ import annotations

from torch import Tensor


def reshape_advantages(seq_advantages: Tensor, weights: Tensor) -> Tensor:
    """OAR token advantages ``A_t = A * w_t``.

    Args:
        seq_advantages: ``[B]`` GRPO advantages ``(r - mean_group) / std_group``.
        weights: ``[B, L]`` token weights (e.g. from :func:`oarl.core.gating.bilevel_weights`).

    Returns:
        ``[B, L]`` per-token advantages in the weights' dtype.
    """
    if seq_advantages.dim() != 1 or weights.dim() != 2 or seq_advantages.shape[0] != weights.shape[0]:
        raise ValueError(
            f"expected seq_advantages [B] and weights [B, L], got {tuple(seq_advantages.shape)} and "
            f"{tuple(weights.shape)}"
        )
    return seq_advantages.to(weights.dtype).unsqueeze(-1) * weights
