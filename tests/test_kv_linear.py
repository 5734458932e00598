"""perturbation_linear: the masked position and its direct paths exact, the other paths first order.

As the replacement embedding approaches the token's own, OAR-P's KL is second order in the distance and the
scorer's (first-order logit change, exact Fisher form at full rank) must agree with exact OAR-P to relative
O(eps). Pinned for Llama and Qwen2 (biases), grouped-query attention, left and right padding, three probes.
"""

from __future__ import annotations

import pytest
import torch
from conftest import layout, tiny_lm

from oarl.core.layout import Layout
from oarl.core.scorers import SCORERS, perturbation_scores
from oarl.core.scorers.masking.linear import fisher_directions, linear_perturbation_scores
from oarl.lab.testbed.fidelity import row_fidelity

ROWS = [(4, 12, 3), (3, 9, 2), (5, 7, 1)]
V, TOKEN, MASK = 20, 5, 7


def _near_mask_model(arch: str, eps: float):
    """A float64 model whose mask token's embedding is ``e_TOKEN + eps * r`` (untied head)."""
    model = tiny_lm(arch, vocab=V).double()
    with torch.no_grad():
        w = model.get_input_embeddings().weight
        w[MASK] = w[TOKEN] + eps * torch.randn(
            w.shape[1], generator=torch.Generator().manual_seed(3), dtype=w.dtype
        )
    return model


def _batch(pad_side: str):
    ids, am, rm, an = layout(ROWS, pad_side=pad_side, vocab=V)
    ids = ids.where(~rm, torch.full_like(ids, TOKEN))  # every reasoning token is TOKEN: each copy moves eps
    return ids, am, rm, an


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("pad_side", ["right", "left"])
@pytest.mark.parametrize("probe", ["as_mean", "lt_logits", "as_joint"])
def test_matches_exact_oarp_for_small_replacements(arch, pad_side, probe):
    model, batch = _near_mask_model(arch, 1e-3), _batch(pad_side)
    exact = perturbation_scores(model, Layout(*batch), probe=probe, mask_token_id=MASK)
    got = linear_perturbation_scores(
        model, Layout(*batch), probe=probe, mask_token_id=MASK, fisher_rank=V, fisher_top=V
    )
    rm = batch[2]
    assert exact[rm].abs().max() > 0
    rel = (got - exact)[rm].norm() / exact[rm].norm()
    assert rel < 2e-3, rel
    assert (got[~rm] == 0).all()


@pytest.mark.parametrize("direct", [True, False])
def test_error_shrinks_with_the_replacement_distance(direct):
    batch, errs = _batch("right"), []
    for eps in (1e-2, 1e-3):
        model = _near_mask_model("llama", eps)
        exact = perturbation_scores(model, Layout(*batch), mask_token_id=MASK)
        got = linear_perturbation_scores(
            model, Layout(*batch), mask_token_id=MASK, fisher_rank=V, fisher_top=V, direct=direct
        )
        errs.append(float((got - exact)[batch[2]].norm() / exact[batch[2]].norm()))
    assert errs[1] < errs[0] / 4, errs  # first order: ~10x smaller


def test_ranks_like_exact_oarp_with_the_real_mask_token():
    model, batch = tiny_lm("llama", vocab=V), layout(ROWS, vocab=V)
    exact = perturbation_scores(model, Layout(*batch))
    got = SCORERS["perturbation_linear"](model, *batch, fisher_rank=V, fisher_top=V)
    assert min(row_fidelity(got, exact, batch[2])["spearman"]) > 0.9


def test_fisher_directions_reproduce_the_quadratic_form():
    g = torch.Generator().manual_seed(0)
    W, z, dh = (
        torch.randn(12, 6, generator=g),
        torch.randn(2, 12, generator=g),
        torch.randn(2, 6, generator=g),
    )
    p = z.softmax(-1)
    dz = dh @ W.T
    want = 0.5 * ((dz**2 * p).sum(-1) - (dz * p).sum(-1) ** 2)
    dirs, eig = fisher_directions(W, z, rank=6, top_n=12)
    got = 0.5 * ((torch.einsum("brd,bd->br", dirs, dh) ** 2) * eig).sum(-1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    dirs2, _ = fisher_directions(W, z, rank=2, top_n=12)
    assert dirs2.shape == (2, 2, 6)


def test_restores_the_attention_implementation_and_rejects_sliding_window():
    model, batch = tiny_lm("qwen2", vocab=V), layout(ROWS, vocab=V)
    before = model.config._attn_implementation
    linear_perturbation_scores(model, Layout(*batch), fisher_rank=2)
    assert model.config._attn_implementation == before
    model.config.use_sliding_window = True
    with pytest.raises(ValueError, match="sliding window"):
        linear_perturbation_scores(model, Layout(*batch))
    assert model.config._attn_implementation == before
    with pytest.raises(ValueError, match="fisher_rank"):
        linear_perturbation_scores(tiny_lm("llama", vocab=V), Layout(*batch), fisher_rank=0)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("pad_side", ["right", "left"])
@pytest.mark.parametrize("probe", ["as_mean", "lt_logits", "as_joint"])
def test_exact_for_one_layer_models(arch, pad_side, probe):
    """One layer: every path from t to the probe is direct, so the streams forward is exact OAR-P."""
    model, batch = tiny_lm(arch, vocab=V, layers=1), layout(ROWS, pad_side=pad_side, vocab=V)
    exact = perturbation_scores(model, Layout(*batch), probe=probe)
    got = linear_perturbation_scores(model, Layout(*batch), probe=probe, fisher_rank=1, divergence="exact")
    torch.testing.assert_close(got, exact, atol=1e-5, rtol=1e-4)
    direct_only = linear_perturbation_scores(
        model, Layout(*batch), probe=probe, indirect=False, divergence="exact"
    )
    torch.testing.assert_close(direct_only, exact, atol=1e-5, rtol=1e-4)


def test_bf16_model_scores_finite_and_rank_like_float32():
    model, batch = tiny_lm("qwen2", vocab=V), layout(ROWS, vocab=V)
    ref = linear_perturbation_scores(model, Layout(*batch))
    got = linear_perturbation_scores(model.to(torch.bfloat16), Layout(*batch))
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert min(row_fidelity(got, ref, batch[2])["spearman"]) > 0.9


def test_the_attention_hook_is_registered_only_while_in_use():
    """The custom attention is an entry of transformers' interface only during perturbation_linear's passes."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from oarl.core.model import HOOK

    model = tiny_lm("llama")
    assert HOOK not in ALL_ATTENTION_FUNCTIONS
    impl = model.config._attn_implementation
    assert linear_perturbation_scores(model, Layout(*layout(ROWS))).abs().sum() > 0
    assert HOOK not in ALL_ATTENTION_FUNCTIONS and model.config._attn_implementation == impl
