"""The algorithm, pure torch (no TRL, no file I/O): outcome probes -> token scorers -> bi-level gate -> token
advantages, plus the diagnostics. Everything above this package may import it; it imports nothing above it.

- ``probes``: LT-Logits, AS-Mean, AS-Joint read off the logits at the answer positions.
- ``scorers``: OAR-P (masking), OAR-G (noised-embedding gradient) and baselines, in a registry.
- ``gating``: the bi-level gate (log1p, min-max, tau-quantile, suppress/boost, renormalise to sum T).
- ``advantages``: ``A_t = A * w_t``. ``diagnostics``: ESS-ratio, top-10% share, oracle recall.
- ``model``: decoder / LM-head helpers the scorers share.
"""
