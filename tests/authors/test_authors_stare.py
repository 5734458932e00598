"""oarl's ``stare`` against STARE's released token weights (tests/authors/stare/, Apache-2.0; docs/authors.md)."""

from __future__ import annotations

import pytest
from authors_common import group_batch, random_groups
from conftest import single_thread, tiny_lm
from stare.compare import measure


@pytest.mark.parametrize("variant", ["O1", "C2"])
def test_stare_weights_match_the_authors_code(variant):
    with single_thread():  # tiny ops: one thread is faster on a loaded machine
        res = measure(
            tiny_lm("llama", vocab=16), group_batch(random_groups(n_groups=2, seed=3)), variant=variant
        )
    assert res["reweighted_theirs"] > 0
    assert res["max_abs_weight_diff"] == 0.0  # the same tokens get the same W / M
    # STARE's candidates are the whole response; oarl's the reasoning: with an answer span they differ.
    assert res["with_answer_answer_tokens_reweighted_theirs"] > 0


def test_stare_gate_off_is_plain_grpo_in_both():
    with single_thread():  # tiny ops: one thread is faster on a loaded machine
        res = measure(
            tiny_lm("llama", vocab=16), group_batch(random_groups(n_groups=2, seed=3)), target_entropy=0.3
        )
    assert res["batch_entropy"] > 0.3 and res["reweighted_theirs"] == 0 and res["tokens_differing"] == 0
