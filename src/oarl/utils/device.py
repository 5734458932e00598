"""Where a command runs and in which precision: the one rule every command and recipe follows.

A machine without a CUDA GPU runs on the CPU (``use_cpu``) in float32; a CUDA GPU runs there, in bfloat16
where it has it (``torch.cuda.is_bf16_supported``). A setting the user (or a recipe) gives wins, except what
the hardware cannot run, which is refused with the fix (:func:`check_precision`).
"""

from __future__ import annotations

import torch


def has_bf16_gpu() -> bool:
    """A CUDA GPU with bfloat16 support is visible."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def device_flags() -> dict[str, bool]:
    """``{"use_cpu": ..., "bf16": ...}`` for this machine (the TrainingArguments fields)."""
    cuda = torch.cuda.is_available()
    return {"use_cpu": not cuda, "bf16": cuda and torch.cuda.is_bf16_supported()}


def describe_device() -> str:
    """One line for the log: which device and precision :func:`device_flags` picked, and why."""
    if not torch.cuda.is_available():
        return "CPU, float32 (no CUDA GPU)"
    name = torch.cuda.get_device_name(0)
    return f"{name}, " + ("bf16" if torch.cuda.is_bf16_supported() else "float32 (no bf16 on this GPU)")


def check_precision(use_cpu: bool, bf16: bool) -> None:
    """Refuse what this machine cannot run: the GPU trainer without a CUDA GPU, or bf16 on a GPU without it.

    bf16 on the CPU trainer is allowed (CPU autocast: the SmolLM2 LoRA recipe measured it twice as fast).
    """
    cuda = torch.cuda.is_available()
    if not use_cpu and not cuda:
        raise ValueError(
            "use_cpu: false, but no CUDA GPU is visible; drop use_cpu (runs follow the machine: the CPU here)"
        )
    if bf16 and not use_cpu and not torch.cuda.is_bf16_supported():
        raise ValueError("bf16: true, but this GPU has no bfloat16 support; set bf16: false (float32)")
