"""LoRA for ``oarl train``: the flags TRL's own scripts have (``--use_peft --lora_r --lora_alpha
--lora_dropout --lora_target_modules --lora_modules_to_save``), the ``peft.LoraConfig`` they describe, and a
merged full model after training (what ``oarl eval`` and vLLM load).

``OARGRPOTrainer(..., peft_config=LoraConfig(...))`` needs nothing else: TRL wraps the model, and OAR's scorers
run on the adapter-wrapped policy (the LoRA layers sit inside the decoder they call), so OAR-G's gradient
reaches the input embeddings through the adapters while only the adapters train (``tests/test_lora.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoraArguments:
    """LoRA fields, named as in TRL's ``ModelConfig`` (dashes work too: ``--use-peft``, ``--lora-r``)."""

    use_peft: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input, in [0, 1)"})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "module names to adapt, e.g. q_proj v_proj, or all-linear (default: peft's per model)"
        },
    )
    lora_modules_to_save: list[str] | None = field(
        default=None,
        metadata={"help": "modules trained in full and saved beside the adapters (e.g. lm_head)"},
    )

    def __post_init__(self) -> None:
        if not (isinstance(self.lora_r, int) and self.lora_r >= 1):
            raise ValueError(f"lora_r must be a whole number >= 1, got {self.lora_r!r}")
        if not (math.isfinite(self.lora_alpha) and self.lora_alpha > 0):
            raise ValueError(f"lora_alpha must be > 0, got {self.lora_alpha!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.lora_target_modules is not None and len(self.lora_target_modules) == 1:
            self.lora_target_modules = self.lora_target_modules[0]  # "all-linear" is a string for peft


def lora_config(args: LoraArguments | None):
    """The ``peft.LoraConfig`` the flags describe, or None without ``--use_peft``."""
    if args is None or not args.use_peft:
        return None
    return peft_lora_config(
        args.lora_r, args.lora_alpha, args.lora_dropout, args.lora_target_modules, args.lora_modules_to_save
    )


def peft_lora_config(
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: list[str] | str | None,
    modules_to_save: list[str] | None = None,
):
    """The one ``peft.LoraConfig`` builder (a causal LM's adapters, no bias): ``oarl train``'s flags and the
    testbed's ``RLSettings.lora_config`` both build theirs here."""
    try:
        from peft import LoraConfig
    except ImportError:
        raise ImportError("LoRA needs the peft package: pip install -e '.[peft]'") from None
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        modules_to_save=modules_to_save,
        bias="none",
    )


def save_merged(trainer, folder: str | Path) -> bool:
    """Save the adapters to ``folder/adapter`` and the merged full model to ``folder`` (main process).

    Returns False (adapters only) where the model is not a PEFT model or its weights are sharded (ZeRO-3),
    where merging on one process would see partitions only.
    """
    from peft import PeftModel

    folder = Path(folder)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if not isinstance(model, PeftModel):
        return False
    trainer.save_model(str(folder / "adapter"))
    zero3 = getattr(getattr(trainer.accelerator.state, "deepspeed_plugin", None), "zero_stage", 0) == 3
    if zero3:
        return False
    if trainer.accelerator.is_main_process:
        model.merge_and_unload().save_pretrained(str(folder))  # training is over: merging in place is fine
    trainer.accelerator.wait_for_everyone()
    return True
