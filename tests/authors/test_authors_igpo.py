"""oarl's ``info_gain`` against IGPO's information-gain reward (tests/authors/igpo/, Apache-2.0; docs/authors.md)."""

from __future__ import annotations

import pytest
import torch
from conftest import single_thread, tiny_lm
from igpo.compare import measure

DELIM = 5


def segments(n_rows: int = 3, seed: int = 0) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(seed)
    segs = []
    for _ in range(n_rows):
        s = {k: torch.randint(DELIM + 1, 64, (n,), generator=g).tolist()
             for k, n in zip(("before", "reasoning", "conclude", "answer"), (5, 12, 2, 3), strict=True)}  # fmt: skip
        s["reasoning"][3] = s["reasoning"][7] = DELIM
        segs.append(s)
    return segs


@pytest.mark.parametrize("steps", [(DELIM,), ()], ids=["per_step", "per_token"])
def test_info_gain_matches_igpos_answer_likelihood(steps):
    with single_thread():  # tiny ops: one thread is faster on a loaded machine
        res = measure(tiny_lm("llama", vocab=64), segments(), steps)
    # The answer's likelihood after every prefix: IGPO's exp(mean log p) == exp(oarl's F / A).
    assert res["max_rel_answer_likelihood"] < 1e-5
    # Gains: a difference of probabilities (IGPO) vs of log-probabilities (oarl): same sign at every cut.
    assert res["gain_sign_agree"] == 1.0
    assert res["gain_spearman_pooled"] > 0.9
