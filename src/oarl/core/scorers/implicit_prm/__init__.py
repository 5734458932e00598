"""Implicit process rewards: PRIME's per-token reward ``beta * log(pi_phi / pi_ref)`` (``prime``)."""
