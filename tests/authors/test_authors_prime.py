"""oarl's ``prime`` against PRIME's released implicit reward (tests/authors/prime/, Apache-2.0; docs/authors.md)."""

from __future__ import annotations

import pytest
import torch
from authors_common import group_batch, random_groups
from conftest import single_thread, tiny_lm
from prime.compare import measure
from prime.implicit_reward import DataParallelPRIME


def test_prime_implicit_reward_matches_the_authors_code():
    gb = group_batch(random_groups(n_groups=2, seed=4))
    with single_thread():  # tiny ops: one thread is faster on a loaded machine
        res = measure(tiny_lm("llama", vocab=16, seed=0), tiny_lm("llama", vocab=16, seed=1), gb, beta=0.05)
    assert res["max_abs_q"] > 0.01
    # Theirs: log pi_phi - log pi_ref (beta only in the PRM's loss); oarl: beta times that.
    assert res["max_rel_q"] < 1e-5


def test_prime_before_update_path_calls_the_reward_with_an_extra_argument():
    """dp_prime.py:227 (``prime_model.update="before"``) passes ``prompt_length`` to a 3-argument method."""
    x = torch.zeros(1, 3)
    batch = {"responses": torch.zeros(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 5, dtype=torch.long),
             "input_ids": torch.zeros(1, 5, dtype=torch.long)}  # fmt: skip
    DataParallelPRIME().compute_implicit_reward(batch, x, x)  # as update="after" / "none" call it
    with pytest.raises(TypeError):
        DataParallelPRIME().compute_implicit_reward(batch, x, x, 2)
