"""Scorer fidelity across precisions: the same model's scores in bf16 (or fp16) against its float32 scores.

A bf16 policy is what users train on GPUs; the scorers were written and tested in float32. Per row, over the
reasoning tokens, Spearman's rho and the top-10% overlap (:func:`oarl.lab.testbed.fidelity.row_fidelity`) say
how much of the float32 ranking a bf16 run keeps. Both runs see the same noise draws (a fresh generator with
the same seed per run). Used by ``tests/test_precision.py`` and ``oarl gpu-check``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from oarl.core.scorers import get_scorer
from oarl.lab.testbed.fidelity import row_fidelity

#: The scorers whose output depends on the model's arithmetic (random / uniform / oracle do not).
MODEL_SCORERS = ("perturbation", "gradient", "entropy")
BATCH_KEYS = ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")


def cast_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A deep copy of ``model`` with floating parameters and buffers in ``dtype`` (the original is untouched)."""
    return copy.deepcopy(model).to(dtype)


def run_scorer(
    model: nn.Module, batch: Mapping[str, Tensor], method: str, seed: int = 0, **options: object
) -> tuple[Tensor, float]:
    """``(scores [B, L] float32 on CPU, seconds)`` of one scorer, noise drawn from a generator seeded ``seed``."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    args = [batch[k].to(device) for k in BATCH_KEYS]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    scores = get_scorer(method)(model, *args, generator=generator, **options)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return scores.float().cpu(), time.perf_counter() - t0


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def precision_fidelity(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    methods: Sequence[str] = MODEL_SCORERS,
    dtype: torch.dtype = torch.bfloat16,
    options: Mapping[str, object] | None = None,
    seed: int = 0,
    frac: float = 0.1,
    reference: nn.Module | None = None,
) -> dict[str, dict[str, float]]:
    """Each scorer's ``dtype`` scores against its float32 scores on the same weights.

    Args:
        model: a causal LM (any dtype); it is copied to float32 (unless ``reference`` is given) and to ``dtype``.
        batch: ``input_ids``, ``attention_mask``, ``reasoning_mask``, ``answer_mask``, each ``[B, L]``.
        methods: scorer names (:data:`oarl.core.scorers.SCORERS`).
        dtype: the low precision to check (``torch.bfloat16`` or ``torch.float16``).
        options: keyword options for every scorer (e.g. ``noise_std``, ``probe``).
        seed: generator seed, the same for both precisions.
        frac: share of reasoning tokens in the top set.
        reference: the float32 model to compare with, if already built (saves a copy).

    Returns:
        ``{method: {"spearman", "top_overlap" (means over rows with a defined value), "spearman_min",
        "rows", "seconds_fp32", "seconds_low", "max_abs_fp32"}}``.
    """
    options = dict(options or {})
    ref_model = reference if reference is not None else cast_copy(model, torch.float32)
    low_model = cast_copy(model, dtype)
    out: dict[str, dict[str, float]] = {}
    for method in methods:
        ref, t_ref = run_scorer(ref_model, batch, method, seed, **options)
        low, t_low = run_scorer(low_model, batch, method, seed, **options)
        fid = row_fidelity(low, ref, batch["reasoning_mask"].bool().cpu(), frac)
        rho = [v for v in fid["spearman"] if not math.isnan(v)]
        out[method] = {
            "spearman": _nanmean(fid["spearman"]),
            "spearman_min": min(rho) if rho else math.nan,
            "top_overlap": _nanmean(fid["top_overlap"]),
            "rows": float(len(rho)),
            "seconds_fp32": t_ref,
            "seconds_low": t_low,
            "max_abs_fp32": float(ref.abs().max()),
        }
    return out


def format_fidelity(results: Mapping[str, Mapping[str, float]], dtype: str = "bf16") -> str:
    """A small Markdown table of :func:`precision_fidelity`'s results."""
    lines = [
        f"| scorer | Spearman {dtype} vs fp32 (mean / min) | top-10% overlap | s fp32 | s {dtype} |",
        "|---|---|---|---|---|",
    ]
    for method, r in results.items():
        lines.append(
            f"| {method} | {r['spearman']:.3f} / {r['spearman_min']:.3f} | {r['top_overlap']:.3f} "
            f"| {r['seconds_fp32']:.3f} | {r['seconds_low']:.3f} |"
        )
    return "\n".join(lines)
