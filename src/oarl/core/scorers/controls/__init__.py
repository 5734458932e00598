"""Controls: plain GRPO (``none``: uniform weights, no scoring), policy entropy, random, uniform (plain GRPO through the gate) and oracle importance (the ceiling)."""
