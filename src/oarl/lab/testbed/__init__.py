"""The offline testbed: synthetic tasks with known causal tokens (``tasks/``), the tiny model they train
(``tiny_model``), SFT and LoRA warm starts (``warmstart``, ``lora_warmstart``, ``lora_gate``), the RL runner
(``settings``, ``experiment``, ``train``), studies and their reports, and oracle evaluation of scorers.
Part of the lab (``oarl[lab]``)."""
