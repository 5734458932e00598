"""Slow, obviously-correct references (not registered): the ground truth for tests and benchmarks."""
