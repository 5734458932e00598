"""The masking family (OAR-P): replace reasoning tokens by the mask token and measure the probe's KL.

``kernel`` (masked position groups with cached prefixes, shared by all), ``exact`` (OAR-P, one token a copy),
``span`` (span / pre-rank / window-then-refine approximations), ``horizon`` (truncated propagation),
``streams`` + ``linear`` (every copy in one forward, the rest first order: linear in T).
"""
