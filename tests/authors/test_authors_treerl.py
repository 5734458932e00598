"""oarl's ``tree`` against TreeRL's released tree values (tests/authors/treerl/, Apache-2.0; docs/authors.md)."""

from __future__ import annotations

from authors_common import group_batch, random_groups
from treerl.compare import measure


def test_tree_matches_treerls_local_values():
    res = measure(group_batch(random_groups(seed=2)))
    assert res["segment_first_tokens"] > 10
    # Theirs = n / (n - 1) x ours at each branch token (leave-one-out baseline vs the group mean).
    assert res["max_rel_first_tokens_scaled"] < 1e-6
    # TreeRL spreads a segment's value over all its tokens; oarl credits only the branch token.
    assert res["inside_segments_nonzero_share"] > 0.5
    # Their script's global term and sqrt weighting keep the ranking of the branch tokens close, not equal.
    assert 0.5 < res["spearman_script_vs_ours_first_tokens"] < 1.0
