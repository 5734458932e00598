"""bfloat16 autocast (on the CPU unless told), or nothing: the one switch the SmolLM2 runs share (training, evaluation, SFT)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def autocast(bf16: bool, device_type: str = "cpu") -> AbstractContextManager:
    """``torch.autocast(device_type, bfloat16)`` when ``bf16``, else a no-op context (this CPU has AVX512-BF16:
    a LoRA forward + backward of SmolLM2 took half the time; docs/real_model.md)."""
    return torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else nullcontext()
