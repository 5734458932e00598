"""Surprisal credit: STARE's surprisal-gated reweighting of the high-surprisal tokens (``stare``)."""
