"""The algorithm: outcome probes -> token scorers -> bi-level gate -> token advantages, plus the diagnostics.

torch functions on tensors; no TRL, accelerate or datasets, no file I/O. transformers is reached through one
adapter, ``model`` (caches, the attention hook, the LM head), and two masking scorers use ``numpy.interp``
(tests/test_layers.py checks both). Everything above this package may import it; it imports no other oarl
code.

- ``probes``: LT-Logits, AS-Mean, AS-Joint read off the logits at the answer positions.
- ``scorers``: families ``masking`` (OAR-P and its approximations), ``gradient`` (OAR-G and variants),
  ``controls`` (entropy, random, uniform, oracle), ``reference`` (slow ground truth); each scorer declared in
  the registry (``scorers.registry``; table: docs/scorers.md).
- ``gating``: the bi-level gate (log1p, min-max, tau-quantile, suppress/boost, renormalise to sum T).
- ``advantages``: ``A_t = A * w_t``. ``diagnostics``: ESS-ratio, top-10% share, oracle recall.
- ``model``: the one adapter to transformers (decoder / LM head, KV-cache slicing, the attention hook).
"""
