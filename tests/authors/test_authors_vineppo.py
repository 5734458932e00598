"""oarl's ``resample`` against VinePPO's Monte-Carlo values and step advantages (tests/authors/vineppo/, MIT;
docs/authors.md), on the rollouts oarl drew."""

from __future__ import annotations

import torch
from conftest import single_thread, tiny_lm
from vineppo.compare import measure

from oarl.core.layout import Layout

P, R, A, DELIM, EOS = 4, 10, 2, 3, 2


def test_resample_matches_vineppo_on_the_same_draws():
    g = torch.Generator().manual_seed(0)
    B, L = 3, P + R + A
    ids = torch.randint(4, 32, (B, L), generator=g)
    ids[:, P + 3] = ids[:, P + 7] = DELIM
    role = torch.tensor([0] * P + [1] * R + [2] * A).expand(B, L)
    lay = Layout(ids, torch.ones(B, L, dtype=torch.long), role == 1, role == 2)

    def reward_fn(row, seqs):
        return [float(sum(t < 16 for t in s[P:]) % 2) for s in seqs]

    with single_thread():  # tiny ops: one thread is faster on a loaded machine
        res = measure(tiny_lm("llama", vocab=32), lay, reward_fn, (DELIM,), eos=EOS, k=8, max_new_tokens=8)
    assert res["steps"] == 9  # 3 steps per row
    # V = mean reward of the k rollouts, A_i = V_{i+1} - V_i: identical on the same rollouts.
    assert res["max_rel_same_draws_truncated_as_rewarded"] < 1e-12
    # VinePPO scores a rollout cut by the length limit 0 (its unfinished penalty); oarl rewards it as it is.
    assert res["rollouts_truncated"] > 0
    assert res["max_rel_same_draws_unfinished_penalty"] > 0.1
