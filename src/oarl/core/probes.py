"""Outcome probes: the model's final-answer distribution, read off its logits.

Sequence layout used everywhere in oarl: one row is prompt + reasoning + answer span, padded left or right.
``answer_mask[B, L]`` marks the answer-span tokens. A causal LM predicts token ``i`` from the logits at
position ``i - 1``, so the probe reads the logits at the positions *predicting* the answer tokens:

- ``"lt_logits"`` (LT-Logits): log-softmax of the logits at the position predicting the first answer token.
- ``"as_mean"`` (AS-Mean, best in the paper): log-softmax of the mean of the logits at the positions
  predicting each answer token.
- ``"as_joint"`` (AS-Joint): mean log-probability of the answer tokens (a scalar per row; importance is the
  drop of this score).

An answer token at position 0 has no predicting position and is ignored. A row without any usable answer
token has ``valid.any() == False``; scorers give it zero scores. :class:`EmbeddingProbe` is the probe as a
function of the input embeddings (what the gradient-class scorers differentiate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from oarl.core.model import decoder_hidden, gather_positions, head_logits, position_ids_from_mask

PROBES = ("lt_logits", "as_mean", "as_joint")
DISTRIBUTION_PROBES = ("lt_logits", "as_mean")


def check_probe(probe: str) -> str:
    """Return ``probe`` or raise a ValueError naming the valid probes."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; expected one of {PROBES}")
    return probe


def ordered_positions(mask: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The positions where ``mask[B, L]`` is set, in order: ``positions[B, width]`` (long; 0 in unused slots,
    ``width <= L``) and ``valid[B, width]`` (bool)."""
    m = mask.bool()
    B, L = m.shape
    idx = torch.arange(L, device=m.device).expand(B, L)
    # Sort the set positions first (in order), everything else after them.
    order = torch.where(m, idx, idx + L).sort(dim=-1).values[:, :width]
    valid = torch.arange(width, device=m.device).expand(B, width) < m.sum(-1, keepdim=True)
    return torch.where(valid, order, torch.zeros_like(order)), valid


def probe_index(answer_mask: Tensor, probe: str) -> tuple[Tensor, Tensor]:
    """Positions whose logits the probe reads.

    Args:
        answer_mask: ``[B, L]`` bool/int, answer-span tokens.
        probe: one of :data:`PROBES`.

    Returns:
        ``positions[B, K]`` (long) and ``valid[B, K]`` (bool). ``positions[b, k] + 1`` is the answer token
        predicted there. ``K = 1`` for ``lt_logits``, else the largest answer length in the batch. Invalid
        slots hold position 0.
    """
    check_probe(probe)
    am = answer_mask.bool().clone()
    am[:, 0] = False  # no position predicts token 0
    counts = am.sum(-1)
    K = 1 if probe == "lt_logits" else max(int(counts.max().item()) if len(am) else 0, 1)
    first, valid = ordered_positions(am, K)
    positions = torch.where(valid, first - 1, torch.zeros_like(first))
    return positions, valid


def probe_targets(input_ids: Tensor, positions: Tensor) -> Tensor:
    """Answer token ids predicted at ``positions``: ``input_ids[b, positions[b, k] + 1]``, shape ``[B, K]``."""
    return input_ids.gather(1, (positions + 1).clamp(max=input_ids.shape[1] - 1))


def probe_from_logits(logits: Tensor, valid: Tensor, targets: Tensor, probe: str) -> Tensor:
    """Probe value from the logits at the probe positions.

    Args:
        logits: ``[B, K, V]`` logits at ``probe_index`` positions.
        valid: ``[B, K]`` bool.
        targets: ``[B, K]`` answer token ids (used by ``as_joint`` only).
        probe: one of :data:`PROBES`.

    Returns:
        ``[B, V]`` log-probabilities of the outcome distribution (``lt_logits``, ``as_mean``) or ``[B]``
        mean answer-token log-probability (``as_joint``). Computed in float32 or wider.
    """
    check_probe(probe)
    # At least float32 (bf16/fp16 log-softmax is too coarse for KLs of ~1e-6); float64 stays float64.
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    w = valid.to(logits.dtype)
    if probe == "lt_logits":
        return F.log_softmax(logits[:, 0], dim=-1)
    if probe == "as_mean":
        mean = (logits * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)
        return F.log_softmax(mean, dim=-1)
    logp = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logp * w).sum(1) / w.sum(1).clamp(min=1.0)


def probe_logits(logits: Tensor, valid: Tensor, probe: str) -> Tensor:
    """The logits behind a distribution probe, ``[B, K, V] -> [B, V]``: the mean over valid positions
    (``as_mean``) or the first position (``lt_logits``). Float32 or wider."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if probe == "lt_logits":
        return logits[:, 0]
    w = valid.to(logits.dtype).unsqueeze(-1)
    return (logits * w).sum(1) / w.sum(1).clamp(min=1.0)


def probe_divergence(clean: Tensor, other: Tensor, probe: str) -> Tensor:
    """How far ``other`` moved from ``clean``, per row (``[B]``).

    Distribution probes: ``KL(p_clean || p_other)``. ``as_joint``: ``clean - other`` (the drop in the answer's
    mean log-probability; may be negative when the change makes the answer more likely).
    """
    check_probe(probe)
    if probe in DISTRIBUTION_PROBES:
        # KL >= 0; the clamp only removes float round-off below zero (values near 0 come out as -1e-7 in
        # float32). It clamps the value only: the gradient is the raw KL's (straight through), because
        # OAR-G differentiates J = KL at tiny noise, where the KL is often that round-off, and a plain clamp
        # would zero every input gradient. Tokens with p_clean = 0 add nothing (0 * log 0 = 0), also where
        # p_other = 0 too (else 0 * inf = NaN from very peaked distributions).
        p = clean.exp()
        terms = torch.where(p == 0, torch.zeros_like(p), p * (clean - other))  # NaN still propagates
        kl = terms.sum(-1)
        return kl + (kl.clamp(min=0.0) - kl).detach()
    return clean - other


def outcome_probe(logits: Tensor, input_ids: Tensor, answer_mask: Tensor, probe: str) -> Tensor:
    """Probe value from full logits ``[B, L, V]`` (simple path; the scorers avoid full logits).

    Returns ``[B, V]`` log-probs or ``[B]`` (``as_joint``), as :func:`probe_from_logits`.
    """
    positions, valid = probe_index(answer_mask, probe)
    at = logits.gather(1, positions.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    return probe_from_logits(at, valid, probe_targets(input_ids, positions), probe)


class EmbeddingProbe:
    """The outcome probe as a function of the input embeddings, for one batch layout (gradient-class scorers).

    ``probe(embeds[B, L, D])`` runs the decoder on the embeddings and applies the LM head only at the probe
    positions: ``[B, V]`` log-probs or ``[B]`` (AS-Joint), as :func:`probe_from_logits`. ``row_valid[B]``: rows
    with an answer span (the others score 0).
    """

    def __init__(
        self, model: nn.Module, input_ids: Tensor, attention_mask: Tensor, answer_mask: Tensor, probe: str
    ):
        self.model, self.attention_mask, self.probe = model, attention_mask, probe
        self.positions, self.valid = probe_index(answer_mask, probe)
        self.targets = probe_targets(input_ids, self.positions)
        self.position_ids = position_ids_from_mask(attention_mask)
        self.row_valid = self.valid.any(-1)

    def __call__(self, embeds: Tensor) -> Tensor:
        hidden, _ = decoder_hidden(self.model, self.attention_mask, self.position_ids, inputs_embeds=embeds)
        logits = head_logits(self.model, gather_positions(hidden, self.positions))
        return probe_from_logits(logits, self.valid, self.targets, self.probe)

    def divergence(self, clean: Tensor, embeds: Tensor) -> Tensor:
        """``sum_b D(clean_b, probe(embeds)_b)`` over rows with an answer span (a scalar to differentiate)."""
        return (probe_divergence(clean, self(embeds), self.probe) * self.row_valid).sum()

    def scored(self, reasoning_mask: Tensor) -> Tensor:
        """``[B, L]`` float: 1 on the reasoning tokens of rows with an answer span (where scores may be non-zero)."""
        return (reasoning_mask.bool() & self.row_valid.unsqueeze(-1)).float()
