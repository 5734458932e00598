"""Oracle metrics (AUROC, precision@k), the mask ablation's replacement scores and `oarl oracle-eval`."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oarl import oracle_recall
from oarl.cli import oracle_eval
from oarl.core.diagnostics import auroc, precision_at_k
from oarl.core.layout import Layout
from oarl.core.scorers import perturbation_scores
from oarl.lab.testbed.oracle import evaluate_scorer, mask_ablation, replacement_scores, scorer_metrics


def test_auroc_extremes_ties_and_empty_rows():
    # Exact: AUROC is a mean of pairwise 0 / 0.5 / 1 counts; 1, 0 and 0.5 are exact dyadic results.
    pos = torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool)
    assert auroc(torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]]), pos).item() == 1.0
    assert auroc(torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]), pos).item() == 0.0
    assert auroc(torch.ones(1, 5), pos).item() == 0.5
    # one positive tied with one of three negatives, above the other two: (1 + 0.5 + 1) / 3 per positive
    assert auroc(torch.tensor([[3.0, 2.0, 2.0, 1.0, 0.0]]), pos).item() == pytest.approx((1 + 2.5 / 3) / 2)
    cand = torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool)  # non-candidates are ignored
    assert auroc(torch.tensor([[5.0, 4.0, 3.0, 9.0, 9.0]]), pos, cand).item() == 1.0
    assert math.isnan(auroc(torch.ones(1, 5), torch.zeros_like(pos)).item())
    assert math.isnan(auroc(torch.ones(1, 5), torch.ones_like(pos)).item())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=14))
def test_auroc_equals_pairwise_count(rows):
    scores = torch.tensor([[float(s) for s, _ in rows]])
    pos = torch.tensor([[p for _, p in rows]])
    p = [s for s, q in rows if q]
    n = [s for s, q in rows if not q]
    got = auroc(scores, pos).item()
    if not p or not n:
        assert math.isnan(got)
    else:
        want = sum((a > b) + 0.5 * (a == b) for a in p for b in n) / (len(p) * len(n))
        assert got == pytest.approx(want, abs=1e-6)


def test_precision_at_k_exact_ties_and_caps():
    # Exact where == is used: hits / k of small integers (1/1) is exact.
    oracle = torch.tensor([[0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    s = torch.tensor([[0.0, 5.0, 4.0, 1.0, 0.0, 0.0]])
    assert precision_at_k(s, oracle, 1).item() == 1.0
    assert precision_at_k(s, oracle, 3).item() == pytest.approx(2 / 3)
    cand = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert precision_at_k(torch.ones(1, 6), oracle, 2, cand).item() == pytest.approx(0.5)  # chance = 2/4
    assert precision_at_k(s, oracle, 10, cand).item() == pytest.approx(0.5)  # k capped at 4 candidates
    per_row = precision_at_k(s.repeat(2, 1), oracle.repeat(2, 1), torch.tensor([1, 0]))
    assert per_row[0].item() == 1.0 and math.isnan(per_row[1].item())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=12))
def test_precision_at_oracle_count_equals_recall(rows):
    scores = torch.tensor([[float(s) for s, _ in rows]])
    oracle = torch.tensor([[p for _, p in rows]])
    k = int(oracle.sum())
    if k == 0:
        return
    assert precision_at_k(scores, oracle, k).item() == pytest.approx(oracle_recall(scores, oracle).item())


def test_replacement_scores_average_the_other_tokens(qwen):
    from conftest import layout

    ids, am, rm, an = layout([(3, 6, 2), (2, 5, 3)], pad_side="left")
    ids[0, 5] = 7  # a reasoning token equal to one replacement
    a = perturbation_scores(qwen, Layout(ids, am, rm, an), mask_token_id=7)
    b = perturbation_scores(qwen, Layout(ids, am, rm, an), mask_token_id=11)
    mean = replacement_scores(qwen, ids, am, rm, an, replacement_ids=[7, 11])
    other = rm & (ids != 7) & (ids != 11)
    assert a[other].min() > 1e-5  # real scores here are >= ~5e-5: the 1e-6 tolerances below separate them
    assert torch.allclose(mean[other], (a[other] + b[other]) / 2, atol=1e-6)
    assert mean[0, 5].item() == pytest.approx(b[0, 5].item(), abs=1e-6)  # only the other replacement counts
    # Replacing a token by itself changes nothing, up to float32 round-off: the masked copy is recomputed from
    # the KV cache (another kernel path than the clean full forward), so its probe differs in the last bits
    # and KL(p || p') is ~1e-8, not 0 (9.3e-9 seen on one machine, 0.0 on another).
    assert a[0, 5].item() == pytest.approx(0.0, abs=1e-6)
    assert (mean[~rm] == 0).all()  # exact: the result is multiplied by the 0/1 reasoning mask
    single = replacement_scores(qwen, ids, am, rm, an, replacement_ids=[7])
    # Exact: with no other replacement the count is 0, so the code sums 0 * score = 0 (no round-off).
    assert single[0, 5].item() == 0.0
    # Same function, same inputs, same process: the one-replacement mean is the OAR-P score (x * 1 / 1).
    assert torch.allclose(single[other], a[other])


def test_scorer_metrics_perfect_uniform_and_mask_rows(qwen):
    from conftest import layout

    ids, am, rm, an = layout([(3, 8, 2), (2, 6, 3), (4, 7, 1), (1, 9, 2)], pad_side="left")
    ids[:, 5] = 2  # every row has an oracle token
    oracle = rm & (ids % 2 == 0)  # a rule a score function can see in any chunk of rows

    def perfect(ids, am, rm, an):
        return (rm & (ids % 2 == 0)).float()

    batch = {
        "input_ids": ids,
        "attention_mask": am,
        "reasoning_mask": rm,
        "answer_mask": an,
        "oracle_mask": oracle,
    }
    best = evaluate_scorer(perfect, batch, batch_size=3)
    # Exact: every row's recall, precision and AUROC is exactly 1 or 0 (integer ratios), so are their means.
    assert best["recall"] == {"mean": 1.0, "ci95": 0.0, "n": 4}
    assert best["auroc"]["mean"] == 1.0 and best["precision"]["mean"] == 1.0
    worst = evaluate_scorer(lambda *a: -perfect(*a), batch, batch_size=3)
    assert worst["auroc"]["mean"] == 0.0
    out = scorer_metrics(qwen, batch, ["uniform", "perturbation"], batch_size=3)
    chance = ((oracle & rm).sum(-1) / rm.sum(-1)).mean().item()
    assert out["uniform"]["chance"]["mean"] == pytest.approx(chance)
    assert out["uniform"]["recall"]["mean"] == pytest.approx(chance)  # ties broken in expectation
    assert out["uniform"]["auroc"]["mean"] == 0.5  # exact: all ties, every pair counts exactly 0.5
    # Bit-exact: the same OAR-P function (pad id 0 is the default mask) on the same chunks in one process.
    assert mask_ablation(qwen, batch, {"pad": [0]}, batch_size=3)["pad"] == out["perturbation"]  # pad id 0
    batch["oracle_mask"] = oracle & (torch.arange(4) >= 2).unsqueeze(-1)  # rows 0-1: no oracle token
    assert evaluate_scorer(perfect, batch)["auroc"]["n"] == 2


def test_cli_oracle_eval_writes_tables_and_json(arith_model, tmp_path, capsys):
    out = tmp_path / "o.json"
    argv = [
        "--models",
        f"tiny={arith_model}",
        "--samples",
        "8",
        "--completions",
        "gold",
        "--methods",
        "perturbation,random",
        "--masks",
        "pad,0,digits",
        "--out",
        str(out),
    ]
    assert oracle_eval.main(argv) == 0
    res = json.loads(out.read_text())["models"]["tiny"]
    assert res["rows"] == res["scorable_rows"] == 8 and res["completion_accuracy"] == 1.0
    assert set(res["scorers"]) == {"perturbation", "random"}
    assert set(res["mask_ablation"]) == {"pad (default)", "token '0'", "random other digit"}
    for m in [*res["scorers"].values(), *res["mask_ablation"].values()]:
        assert m["recall"]["n"] == 8 and 0.0 <= m["auroc"]["mean"] <= 1.0
    text = capsys.readouterr().out
    assert "recall@k" in text and "chance" in text and "random other digit" in text
    assert oracle_eval.main([*argv[:-2], "--out", str(tmp_path / "again.json")]) == 0
    # Bit-exact: the same command again, same seeds, same inputs, same process and thread count.
    assert json.loads((tmp_path / "again.json").read_text())["models"]["tiny"]["scorers"] == res["scorers"]


def test_cli_oracle_eval_rejects_bad_input(arith_model, tmp_path):
    base = ["--samples", "2", "--completions", "gold", "--out", str(tmp_path / "x.json")]
    assert oracle_eval.main(["--models", f"m={tmp_path}", *base]) == 2  # not a model folder
    assert oracle_eval.main(["--models", f"m={arith_model}", "--masks", "zz", *base]) == 2  # not one token
    assert oracle_eval.main(["--models", f"m={arith_model}", "--methods", "nope", *base]) == 2
    from oarl.lab.testbed.demo import checkpoint_task, demo_task

    assert checkpoint_task(arith_model) == demo_task()
