"""Fidelity harness: rank agreement against a reference scorer, top-set overlap, pass counting."""

import math

import numpy as np
import pytest
import torch
from conftest import layout, tiny_lm
from scipy import stats

from oarl import perturbation_scores
from oarl.core.layout import Layout
from oarl.lab.testbed.fidelity import PassCounter, row_fidelity, scorer_fidelity, summarize, top_overlap


def test_top_overlap_counts_shared_top_tokens():
    ref = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert top_overlap(ref, ref, 0.2) == pytest.approx(1.0)
    assert top_overlap(-ref, ref, 0.2) == pytest.approx(0.0)
    assert top_overlap(np.array([5.0, 0, 4, 0, 0, 0, 0, 0, 0, 0]), ref, 0.2) == pytest.approx(0.5)


def test_row_fidelity_matches_scipy_on_candidates_only():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 12, generator=g)
    scores = ref + 0.3 * torch.rand(3, 12, generator=g)
    cand = torch.zeros(3, 12, dtype=torch.bool)
    cand[:, 2:10] = True
    scores[:, :2] = 100.0  # outside the candidates: must not count
    rows = row_fidelity(scores, ref, cand)
    for b in range(3):
        s, r = scores[b, 2:10].double().numpy(), ref[b, 2:10].double().numpy()
        assert rows["spearman"][b] == pytest.approx(stats.spearmanr(s, r).statistic)
        assert rows["kendall"][b] == pytest.approx(stats.kendalltau(s, r).statistic)


def test_constant_rows_have_no_rank_correlation():
    ref = torch.arange(8.0).unsqueeze(0)
    rows = row_fidelity(torch.zeros(1, 8), ref, torch.ones(1, 8, dtype=torch.bool))
    assert math.isnan(rows["spearman"][0]) and math.isnan(rows["kendall"][0])
    assert summarize(rows["spearman"])["n"] == 0


def test_summarize_t_interval():
    s = summarize([1.0, 2.0, 3.0, float("nan")])
    assert s["mean"] == pytest.approx(2.0) and s["n"] == 3
    assert s["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))


def test_pass_counter_and_self_fidelity():
    model = tiny_lm("llama")
    ids, am, rm, an = layout([(3, 6, 2), (2, 8, 2)])
    batch = {"input_ids": ids, "attention_mask": am, "reasoning_mask": rm, "answer_mask": an}
    with torch.no_grad():
        ref = perturbation_scores(model, Layout(ids, am, rm, an))
    out = scorer_fidelity(lambda b: perturbation_scores(model, Layout(*b.values())), ref, batch, model)
    assert out["spearman"]["mean"] == pytest.approx(1.0)
    assert out["top_overlap"]["mean"] == pytest.approx(1.0)
    cost = out["cost"]
    assert cost["grad_tokens"] == 0 and cost["no_grad_tokens"] > 0
    with PassCounter(model) as c:
        with torch.enable_grad():
            e = model.get_input_embeddings()(ids).detach().requires_grad_(True)
            h = model.model(inputs_embeds=e, attention_mask=am).last_hidden_state
            for _ in range(3):  # one graph, differentiated three times
                torch.autograd.grad(h.sum(), e, retain_graph=True)
    assert c.grad == ids.numel() and c.backward == 3 * ids.numel()
    assert c.cost_units == pytest.approx(7 * ids.numel())


def test_top_overlap_averages_ties_on_both_sides():
    """One definition (testbed.fidelity and benchmarks/real_model_credit.py): ties broken at random and averaged
    exactly, denominator k. A constant scorer scores chance, k / n, wherever the reference's top tokens sit
    (ties by position gave 1.0 or 0.0 depending on the order)."""
    n, ref = 10, np.arange(10.0)
    flat = np.zeros(n)
    assert top_overlap(flat, ref, 0.2) == pytest.approx(0.2)
    assert top_overlap(flat, ref[::-1].copy(), 0.2) == pytest.approx(0.2)
    # reference tied at its k-th value: 3 tokens share the top spot, k = 2: each is in with probability 2/3
    tied_ref = np.array([1.0, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert top_overlap(np.arange(10.0)[::-1].copy(), tied_ref, 0.2) == pytest.approx(2 / 3)
    assert top_overlap(tied_ref, tied_ref, 0.2) == pytest.approx((3 * (2 / 3) ** 2) / 2)
    rng = np.random.default_rng(0)
    for _ in range(20):  # without ties it is the plain |A & B| / k
        s, r = rng.random(13), rng.random(13)
        k = 2
        a, b = set(np.argsort(-s)[:k]), set(np.argsort(-r)[:k])
        assert top_overlap(s, r, 0.1) == pytest.approx(len(a & b) / k)


def test_the_benchmark_uses_the_library_top_overlap():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "real_model_credit.py"
    spec = importlib.util.spec_from_file_location("real_model_credit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.top_overlap is top_overlap
