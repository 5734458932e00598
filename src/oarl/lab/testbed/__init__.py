"""The offline testbed: synthetic tasks with known causal tokens, tiny models, SFT warm starts, the RL
experiment runner and oracle evaluation of scorers."""
