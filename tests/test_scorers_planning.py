"""HICRA (``hicra``): strategic grams found in the decoded text; weights ``1 + alpha sign(A)`` on them."""

from __future__ import annotations

import pytest
import torch

from oarl.core.layout import Layout
from oarl.core.scorers import get_scorer
from oarl.core.scorers.planning.hicra import planning_mask

VOCAB = {1: "<p>", 2: "Let", 3: " me", 4: " check", 5: " 2", 6: "+", 7: "2", 8: " Wait", 9: ",", 10: " meter"}


class WordPieces:
    def decode(self, ids, **_) -> str:
        return "".join(VOCAB[int(i)] for i in ids)


def _layout(rows: list[list[int]], rewards: list[float]) -> Layout:
    L = max(len(r) for r in rows) + 1
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    am = torch.zeros_like(ids)
    for b, r in enumerate(rows):
        ids[b, 1 : 1 + len(r)] = torch.tensor(r)
        ids[b, 0] = 1
        am[b, : 1 + len(r)] = 1
    rm = am.bool().clone()
    rm[:, 0] = False
    return Layout(ids, am, rm, torch.zeros_like(rm), group_ids=torch.zeros(len(rows), dtype=torch.long),
                  rewards=torch.tensor(rewards))  # fmt: skip


def test_grams_mark_every_token_they_overlap_on_word_boundaries():
    lay = _layout([[2, 3, 4, 5, 6, 7], [8, 9, 5, 2, 10]], [1.0, 0.0])
    marked = planning_mask(WordPieces(), lay.input_ids, lay.reasoning_mask, ("let me", "wait", "check"))
    assert marked[0].nonzero().flatten().tolist() == [1, 2, 3]  # "Let", " me", " check"
    assert marked[1].nonzero().flatten().tolist() == [1]  # " Wait"; "Let meter" is not "let me"


@pytest.mark.parametrize("alpha", [0.2, 0.5])
def test_hicra_amplifies_planning_in_correct_rows_and_softens_it_in_wrong_rows(alpha):
    lay = _layout([[2, 3, 4, 5, 6, 7], [8, 9, 5, 2, 10]], [1.0, 0.0])
    w = get_scorer("hicra")(None, lay, tokenizer=WordPieces(), alpha=alpha, grams=["let me", "wait", "check"])
    assert w[0].tolist() == pytest.approx([0, 1 + alpha, 1 + alpha, 1 + alpha, 1, 1, 1])
    assert w[1].tolist() == pytest.approx([0, 1 - alpha, 1, 1, 1, 1, 0])
    # as A_t = A * w_t this is the paper's A + alpha |A| on the planning tokens
    for a, row in [(0.7, 0), (-0.7, 1)]:
        assert float(a * w[row, 1]) == pytest.approx(a + alpha * abs(a))


def test_hicra_refuses_a_bare_string_of_grams_at_config_time():
    with pytest.raises(ValueError, match="grams must be a list"):
        get_scorer("hicra").validate({"grams": "wait"})
