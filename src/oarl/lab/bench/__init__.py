"""Benchmarks behind ``oarl bench``: scorer cost vs a naive baseline, and training-step overhead vs GRPO (the
lab)."""
