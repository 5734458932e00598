"""Resampling credit: regenerate the continuation from each prefix and reward it (the expensive reference)."""
