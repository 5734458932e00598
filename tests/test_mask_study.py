"""The mask-replacement study's plain OAR-P (one forward per masked copy) against the library's exact OAR-P."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_lm

from oarl.core.scorers import get_scorer
from oarl.lab.testbed.mask_study import masked_scores


def _row(vocab: int, length: int = 14):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, vocab, (length,), generator=g)
    reasoning = torch.zeros(length, dtype=torch.bool)
    reasoning[4:11] = True
    answer = torch.zeros(length, dtype=torch.bool)
    answer[12:] = True
    return ids, reasoning, answer


@pytest.mark.parametrize("probe", ["as_mean", "lt_logits", "as_joint"])
def test_token_replacement_equals_exact_oar_p(probe):
    model = tiny_lm("llama").eval()
    ids, reasoning, answer = _row(model.config.vocab_size)
    exact = get_scorer("perturbation")  # the registry call takes the four [B, L] tensors
    ref = exact(
        model,
        ids[None],
        torch.ones_like(ids)[None],
        reasoning[None],
        answer[None],
        probe=probe,
        mask_token_id=0,
    )[0]
    mine = masked_scores(model, ids, reasoning, answer, "token:0", probe, chunk=3)
    torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("variant", ["mean_embedding", "delete"])
def test_other_variants_score_reasoning_tokens_only(variant):
    model = tiny_lm("llama").eval()
    ids, reasoning, answer = _row(model.config.vocab_size)
    s = masked_scores(model, ids, reasoning, answer, variant)
    assert torch.isfinite(s).all() and (s[~reasoning] == 0).all() and s[reasoning].abs().sum() > 0
    with pytest.raises(ValueError, match="unknown mask variant"):
        masked_scores(model, ids, reasoning, answer, "blank")
