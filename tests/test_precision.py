"""bf16 scores track float32 scores (same weights, same noise draws), and the float32 helpers are exact."""

from __future__ import annotations

import pytest
import torch
from conftest import layout, tiny_lm

import oarl.core.model as core_model
from oarl.core.layout import Layout
from oarl.core.model import float32_weights, head_logits
from oarl.core.scorers import gradient_scores
from oarl.lab.testbed.precision import cast_copy, format_fidelity, precision_fidelity


@pytest.fixture(scope="module")
def setup():
    model = tiny_lm("llama", hidden=64)
    ids, am, rm, ans = layout([(4, 20, 2), (3, 24, 1), (5, 16, 3), (2, 22, 2)])
    batch = {"input_ids": ids, "attention_mask": am, "reasoning_mask": rm, "answer_mask": ans}
    return model, batch, cast_copy(model, torch.float32)


# Measured on this model (docs/gpu.md): mean Spearman 0.998 (OAR-P), 0.999 (entropy), 0.92 (OAR-G at
# noise 1e-3 in bf16), 0.999 (OAR-G at 1e-3 with upcast=True, or at noise 0.1). Thresholds leave room.
CASES = [
    ("perturbation", {}, 0.98, 0.9),
    ("perturbation", {"upcast": True}, 0.98, 0.9),
    ("entropy", {}, 0.98, 0.75),  # near-tied entropies swap places in the top set; the ranks still agree
    ("gradient", {"noise_std": 0.1}, 0.98, 0.9),
    ("gradient", {"noise_std": 1e-3, "upcast": True}, 0.98, 0.9),
    # bf16 compute blurs the paper's tiny noise (why upcast exists)
    ("gradient", {"noise_std": 1e-3}, 0.8, 0.6),
]


@pytest.mark.parametrize(("method", "options", "min_rho", "min_top"), CASES)
def test_bf16_scores_track_float32(setup, method, options, min_rho, min_top):
    model, batch, ref = setup
    res = precision_fidelity(model, batch, [method], options=options, seed=0, reference=ref)[method]
    assert res["rows"] == 4
    assert res["spearman"] >= min_rho, res
    assert res["top_overlap"] >= min_top, res
    assert "| " + method in format_fidelity({method: res})


def test_upcast_matches_float32_scores_in_float32(setup):
    """On a float32 model ``upcast`` changes nothing; on bf16 weights it equals float32 compute on them."""
    model, batch, _ = setup
    args = [batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]
    plain = gradient_scores(model, Layout(*args), generator=torch.Generator().manual_seed(3))
    up = gradient_scores(model, Layout(*args), generator=torch.Generator().manual_seed(3), upcast=True)
    torch.testing.assert_close(up, plain, rtol=0, atol=0)  # bit-exact: upcast is a no-op on float32 weights
    low = cast_copy(model, torch.bfloat16)
    on_rounded = gradient_scores(
        cast_copy(low, torch.float32), Layout(*args), generator=torch.Generator().manual_seed(3)
    )
    up_low = gradient_scores(low, Layout(*args), generator=torch.Generator().manual_seed(3), upcast=True)
    # The noisy embeddings are rounded to bf16 once in the upcast run too (the model's own dtype).
    assert torch.corrcoef(torch.stack([up_low.flatten(), on_rounded.flatten()]))[0, 1] > 0.99
    assert all(p.dtype == torch.bfloat16 for p in low.parameters())


def test_float32_weights_restores_dtype_identity_and_values():
    model = tiny_lm("llama")
    model.model.layers[0].mlp.up_proj.to(torch.bfloat16)  # mixed: like a bf16 base with fp32 adapters
    before = {n: (p, p.dtype, p.detach().clone()) for n, p in model.named_parameters()}
    with float32_weights(model):
        assert all(p.dtype == torch.float32 for p in model.parameters())
    for n, p in model.named_parameters():
        param, dtype, value = before[n]
        assert p is param and p.dtype == dtype
        torch.testing.assert_close(p.detach(), value, rtol=0, atol=0)  # bf16 -> fp32 -> bf16 is exact
    with float32_weights(model, enabled=False):
        assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16


def test_head_logits_bf16_in_float32_chunks(monkeypatch):
    model = cast_copy(tiny_lm("llama", vocab=100), torch.bfloat16)
    hidden = torch.randn(2, 3, 32).bfloat16()
    monkeypatch.setattr(core_model, "HEAD_CHUNK_ROWS", 7)  # 100 rows -> 15 chunks
    logits = head_logits(model, hidden)
    assert logits.dtype == torch.float32 and logits.shape == (2, 3, 100)
    exact = hidden.double() @ model.lm_head.weight.double().T
    torch.testing.assert_close(logits.double(), exact, rtol=1e-5, atol=1e-5)
