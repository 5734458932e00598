"""Approximate OAR-P scorers (span, pre-rank, refine, horizon) pinned to exact OAR-P and slow references."""

from __future__ import annotations

import pytest
import torch
from conftest import layout, tiny_lm

from oarl.core.layout import Layout
from oarl.core.model import default_mask_token_id, full_logits
from oarl.core.probes import outcome_probe, probe_divergence
from oarl.core.scorers import SCORERS, gradient_scores, perturbation_scores
from oarl.core.scorers.masking.kernel import group_divergences, reasoning_spans
from oarl.lab.testbed.fidelity import row_fidelity

ROWS = [(5, 30, 3), (3, 22, 2), (6, 17, 1)]
ATOL = 1e-5


@pytest.fixture(scope="module")
def model():
    return tiny_lm("llama", layers=2)


@pytest.fixture(scope="module", params=["right", "left"])
def batch(request):
    return layout(ROWS, pad_side=request.param)


@pytest.fixture(scope="module")
def exact(model, batch):
    return perturbation_scores(model, Layout(*batch))


def _slow_group_kl(model, batch, b: int, group: list[int], probe: str = "as_mean") -> float:
    """Full forward with every position of ``group`` replaced by the mask token (the brute-force reference)."""
    ids, am, _, an = (t[b : b + 1] for t in batch)
    clean = outcome_probe(full_logits(model, ids, am), ids, an, probe)
    masked_ids = ids.clone()
    masked_ids[0, torch.tensor(group)] = default_mask_token_id(model, None)
    masked = outcome_probe(full_logits(model, masked_ids, am), masked_ids, an, probe)
    return float(probe_divergence(clean, masked, probe))


def test_singleton_groups_are_exact(model, batch, exact):
    groups = [[[t] for t in batch[2][b].nonzero().flatten().tolist()] for b in range(len(ROWS))]
    got = group_divergences(model, batch[0], batch[1], batch[3], groups, max_batch_tokens=40)
    for b in range(len(ROWS)):
        torch.testing.assert_close(got[b], exact[b][batch[2][b]], atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("probe", ["as_mean", "lt_logits", "as_joint"])
def test_span_scores_match_slow_window_masking(model, batch, probe):
    window = 4
    scores = SCORERS["perturbation_span"](model, *batch, window=window, probe=probe, max_batch_tokens=50)
    with torch.no_grad():
        for b, spans in enumerate(reasoning_spans(batch[0], batch[2], window)):
            for span in spans[:3] + spans[-2:]:
                ref = _slow_group_kl(model, batch, b, span, probe)
                for t in span:
                    assert abs(float(scores[b, t]) - ref) < ATOL + 1e-4 * abs(ref)


def test_step_spans_cut_at_step_end_tokens():
    ids = torch.tensor([[9, 1, 2, 7, 3, 7, 4, 5, 6, 8]])
    rm = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    assert reasoning_spans(ids, rm, window=2, step_end_ids=[7]) == [[[1, 2], [3], [4, 5], [6, 7], [8]]]
    assert reasoning_spans(ids, rm, window=3) == [[[1, 2, 3], [4, 5, 6], [7, 8]]]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("perturbation_span", {"window": 1}),
        ("perturbation_prerank", {"fraction": 1.0}),
        ("perturbation_prerank", {"fraction": 1.0, "prerank": "perturbation_linear"}),
        ("perturbation_refine", {"window": 4, "fraction": 1.0}),
        ("perturbation_horizon", {"horizon": 10_000}),
        ("perturbation_horizon", {"horizon": 10_000, "window": 4}),
    ],
)
def test_limits_equal_exact(model, batch, exact, name, options):
    got = SCORERS[name](model, *batch, **options)
    torch.testing.assert_close(got, exact, atol=ATOL, rtol=1e-4)


def test_prerank_keeps_exact_on_top_and_preranks_the_rest(model, batch, exact):
    g = torch.Generator().manual_seed(0)
    got = SCORERS["perturbation_prerank"](
        model, *batch, fraction=0.25, prerank_options={"noise_std": 0.1}, generator=g
    )
    pre = gradient_scores(model, Layout(*batch), noise_std=0.1, generator=torch.Generator().manual_seed(0))
    rm = batch[2]
    for b in range(len(ROWS)):
        ts = rm[b].nonzero().flatten()
        k = -(-len(ts) // 4)
        top = ts[pre[b, ts].argsort(descending=True, stable=True)[:k]]
        rest = ts[~torch.isin(ts, top)]
        torch.testing.assert_close(got[b, top], exact[b, top], atol=ATOL, rtol=1e-4)
        ratio = got[b, rest] / pre[b, rest]  # one scale per row
        torch.testing.assert_close(ratio, ratio[0].expand_as(ratio), rtol=1e-4, atol=0.0)
    assert (got[~rm.bool()] == 0).all()


def test_refine_is_exact_on_the_top_spans(model, batch, exact):
    got = SCORERS["perturbation_refine"](model, *batch, window=4, fraction=0.3)
    span = SCORERS["perturbation_span"](model, *batch, window=4)
    for b, spans in enumerate(reasoning_spans(batch[0], batch[2], 4)):
        best = max(spans, key=lambda s: float(span[b, s].mean()))
        torch.testing.assert_close(got[b, best], exact[b, best], atol=ATOL, rtol=1e-4)


def test_horizon_is_exact_for_one_layer_models(batch):
    # With one layer, keys/values depend only on each token's own embedding: truncation loses nothing.
    m = tiny_lm("llama", layers=1, seed=3)
    exact = perturbation_scores(m, Layout(*batch))
    got = SCORERS["perturbation_horizon"](m, *batch, horizon=0, copies_per_chunk=3)
    torch.testing.assert_close(got, exact, atol=ATOL, rtol=1e-4)


def test_horizon_approximates_exact_and_improves_with_the_horizon(model, batch, exact):
    rm = batch[2]
    rho = {}
    for h in (0, 8):
        got = SCORERS["perturbation_horizon"](model, *batch, horizon=h, copies_per_chunk=2, window=4)
        assert (got[~rm.bool()] == 0).all() and torch.isfinite(got).all()
        rho[h] = sum(row_fidelity(got, exact, rm)["spearman"]) / len(ROWS)
    assert rho[0] > 0.5 and rho[8] >= rho[0] - 1e-9


def test_bad_options_raise(model, batch):
    with pytest.raises(ValueError, match="window"):
        SCORERS["perturbation_span"](model, *batch, window=0)
    with pytest.raises(ValueError, match="spread"):
        SCORERS["perturbation_span"](model, *batch, spread="nope")
    with pytest.raises(ValueError, match="fraction"):
        SCORERS["perturbation_prerank"](model, *batch, fraction=1.5)
    with pytest.raises(ValueError, match="cheap scorer"):
        SCORERS["perturbation_prerank"](model, *batch, prerank="perturbation")
    with pytest.raises(ValueError, match="horizon"):
        SCORERS["perturbation_horizon"](model, *batch, horizon=-1)


def test_exact_compute_limit_is_a_mac_ratio():
    from oarl.lab.bench.scorer import ScorerCase, exact_compute_limit

    big = exact_compute_limit(ScorerCase(model="qwen2-30m"))
    tiny = exact_compute_limit(ScorerCase(model="tiny"))
    # A large vocabulary makes the naive baseline's full logits dominate its cost.
    assert 4.0 < big["limit"] < 6.0 and 1.5 < tiny["limit"] < 3.0
    assert big["limit"] == pytest.approx(big["naive_macs"] / big["exact_macs"])
