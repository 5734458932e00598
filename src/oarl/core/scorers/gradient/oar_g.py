"""OAR-G: gradient scores, ``score_t = |<dJ/de_t, e_t>|`` with ``J = KL(p_clean || p_noisy)`` of the probe.

Gaussian noise (std ``noise_std``, paper: 1e-3) is added to the reasoning-token embeddings; one forward and
one backward of the whole batch give every token's importance. Gradients are taken with
``torch.autograd.grad`` with respect to the embeddings only, so the parameters' accumulated ``.grad``
(e.g. mid gradient-accumulation in a trainer) is never touched.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oarl.core.layout import Layout
from oarl.core.model import eval_mode, float32_weights
from oarl.core.probes import EmbeddingProbe, check_probe
from oarl.core.scorers.registry import ScorerSpec, register_scorer


@register_scorer(
    ScorerSpec(
        "gradient",
        "gradient",
        frozenset({"model", "gradients", "randomness"}),
        "recommended",
        "backward",
        label="OAR-G",
    )
)
def gradient_scores(
    model: nn.Module,
    layout: Layout,
    probe: str = "as_mean",
    noise_std: float | Tensor = 1e-3,
    generator: torch.Generator | None = None,
    upcast: bool = False,
    noise_samples: int = 1,
) -> Tensor:
    """OAR-G token importance (paper: ``|<dJ/de_t, e_t>|``, ``J = KL(p_clean || p_noisy)`` on the probe).

    Args:
        model: a transformers causal LM (run in eval mode here; modes are restored).
        layout: the rows, as in ``perturbation_scores``.
        probe: ``"lt_logits"``, ``"as_mean"`` or ``"as_joint"`` (``J`` = clean minus noisy mean log-prob).
        noise_std: std of the Gaussian noise on reasoning embeddings (>= 0), or a ``[B]`` tensor of one std
            per row. With 0 and a KL probe the gradient vanishes (KL is minimal at p_noisy = p_clean): all
            scores are 0.
        generator: torch generator for the noise, for reproducible scores.
        upcast: run the two passes in float32 (:func:`oarl.core.model.float32_weights`: bf16/fp16 weights
            upcast in place, restored after). In bf16 the paper's 1e-3 noise is drowned by the rounding of
            the activations (docs/gpu.md); costs 4 bytes per parameter while scoring.
        noise_samples: noise draws averaged (one noisy forward + backward each, one clean forward in all);
            1 is the paper's OAR-G.

    Returns:
        ``[B, L]`` float32 scores, 0 outside ``reasoning_mask`` and in rows without an answer span.
    """
    check_probe(probe)
    input_ids, attention_mask, reasoning_mask, answer_mask = layout.tensors
    std = torch.as_tensor(noise_std, dtype=torch.float32, device=input_ids.device)
    if std.dim() > 1 or (std.dim() == 1 and len(std) != input_ids.shape[0]) or not bool((std >= 0).all()):
        raise ValueError(f"noise_std must be >= 0 (a number or one per row), got {noise_std}")
    if noise_samples < 1:
        raise ValueError(f"noise_samples must be >= 1, got {noise_samples}")
    probe_of = EmbeddingProbe(model, input_ids, attention_mask, answer_mask, probe)
    with eval_mode(model), float32_weights(model, enabled=upcast):
        with torch.no_grad():
            embeds = model.get_input_embeddings()(input_ids)
            clean = probe_of(embeds)
        total = torch.zeros(embeds.shape[:2], dtype=torch.float32, device=embeds.device)
        for _draw in range(noise_samples):
            noise = torch.randn(embeds.shape, generator=generator, device=embeds.device, dtype=torch.float32)
            noise = noise * std.reshape(-1, 1, 1) * reasoning_mask.unsqueeze(-1).float()
            # Added in float32, rounded once to the model's dtype (bf16 keeps ~3 digits of embedding + noise).
            noisy_embeds = (embeds.float() + noise).to(embeds.dtype).requires_grad_(True)
            with torch.enable_grad():
                J = probe_of.divergence(clean, noisy_embeds)
                (grad,) = torch.autograd.grad(J, noisy_embeds, allow_unused=True)
            if grad is not None:  # None: J does not depend on the embeddings (no answer span): scores 0
                total += (grad.float() * embeds.float()).sum(-1).abs()
    return total / noise_samples * probe_of.scored(reasoning_mask)
