"""oarl's ``prime`` against PRIME's released implicit reward (tests/authors/prime/, Apache-2.0; docs/authors.md)."""

from __future__ import annotations

from authors_common import group_batch, random_groups
from conftest import single_thread, tiny_lm
from prime.compare import measure


def test_prime_implicit_reward_matches_the_authors_code():
    gb = group_batch(random_groups(n_groups=2, seed=4))
    with single_thread():  # tiny ops: one thread is faster on a loaded machine
        res = measure(tiny_lm("llama", vocab=16, seed=0), tiny_lm("llama", vocab=16, seed=1), gb, beta=0.05)
    assert res["max_abs_q"] > 0.01
    # Theirs: log pi_phi - log pi_ref (beta only in the PRM's loss); oarl: beta times that.
    assert res["max_rel_q"] < 1e-5
