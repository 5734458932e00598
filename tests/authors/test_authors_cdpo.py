"""oarl's ``cdpo`` against cDPO's released contrastive estimation (tests/authors/cdpo/, Apache-2.0;
docs/authors.md)."""

from __future__ import annotations

from authors_common import group_batch, random_groups
from cdpo.compare import measure
from conftest import single_thread, tiny_lm


def test_cdpo_weights_match_the_authors_code():
    gb = group_batch(random_groups(n_groups=2, seed=5))
    with single_thread():  # tiny ops: one thread is faster on a loaded machine
        res = measure(tiny_lm("llama", vocab=16, seed=0), tiny_lm("llama", vocab=16, seed=1), gb)
    assert res["tokens"] > 50
    assert res["max_rel_weight"] < 1e-5
    # Their Qwen branch prepends instead of appending: each rejected weight moves to the next token.
    assert res["qwen_branch_max_abs_shift"] > 1e-3
