"""The benchmarks run on tiny inputs and compute with the library: ``real_model_credit``'s resample reference is
the ``resample`` scorer's own credit, its summaries are the library's; ``role_weights_credit`` on the shipped
flag warm start."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from oarl.batch.rollout_layout import encode_text_pairs
from oarl.core.scorers import get_scorer
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.fidelity import summarize
from oarl.lab.testbed.tasks.arith_task import ArithTask

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_real_model_credit_resample_is_the_scorer_on_a_tiny_model():
    rc = _load("real_model_credit")
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(
        tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64
    ).eval()
    problems = ArithTask().problems(3, seed=3)
    groups = [
        {
            "problem": i,
            "prompt": p.prompt,
            "completions": [p.completion, p.completion.replace("=", "=1", 1)],
            "rewards": [1.0, 0.0],
            "answer": str(p.answer),
        }
        for i, p in enumerate(problems)
    ]
    lay, where = rc.group_layout(tok, groups)
    assert lay.group_ids.tolist() == [0, 0, 1, 1, 2, 2] and len(where) == 6
    steps = (tok.convert_tokens_to_ids(";"),)
    a = argparse.Namespace(k=2, max_new_tokens=6, temperature=1.0, max_batch_sequences=8)
    refs = [g["answer"] for g in groups for _ in g["completions"]]
    prompts = [g["prompt"] for g in groups for _ in g["completions"]]
    prompt_len = encode_text_pairs(tok, prompts, [c for g in groups for c in g["completions"]]).prompt_lengths
    out, seconds = rc.run_resample(model, tok, lay, refs, prompt_len, steps, a, seed=0)
    assert seconds > 0
    rm = lay.reasoning_mask.bool()

    def reward_fn(row, seqs):
        texts = [tok.decode(s[int(prompt_len[row]) :], skip_special_tokens=True) for s in seqs]
        return [rc.reward(t, refs[row]) for t in texts]

    opts = dict(
        k=2,
        max_new_tokens=6,
        temperature=1.0,
        eos_token_id=tok.eos_token_id,
        step_token_ids=steps,
        max_batch_sequences=8,
    )
    for credit in ("abs", "aligned"):
        s = get_scorer("resample")(
            model, lay, generator=torch.Generator().manual_seed(0), reward_fn=reward_fn, credit=credit, **opts
        )
        got = [torch.tensor(r, dtype=torch.float64).float() for r in out[f"resample_{credit}"]]
        assert all(torch.equal(g, s[b][rm[b]]) for b, g in enumerate(got)), credit  # the scorer's own numbers
    assert [len(r) for r in out["steps"]] == rm.sum(-1).tolist() and len(out["value_root"]) == 6
    agree = rc.agreement(
        out["resample_abs"], out["resample_aligned"], out["steps"], out["resample_abs"], 0.1, 0
    )
    assert set(agree["spearman"]) == {"mean", "ci95", "n"}
    rows = [r for r in agree.values() if isinstance(r, dict)]
    assert all(r.keys() == summarize([1.0]).keys() for r in rows)  # the library's one CI summary
    assert rc.fmt(summarize([])) == "–" and rc.fmt(summarize([0.5, 0.7])).startswith("0.60 ± ")


def test_real_model_credit_records_this_machine():
    rc = _load("real_model_credit")
    text = (BENCH / "real_model_credit.py").read_text(encoding="utf-8")
    assert "2 CPU cores" not in text and "machine_description()" in text
    assert hasattr(rc, "machine_description")


def test_role_weights_credit_on_the_shipped_flag_warm_start(tmp_path):
    rw = _load("role_weights_credit")
    a = argparse.Namespace(
        task="flag",
        fidelity=True,
        prompts=3,
        group=4,
        methods="perturbation,entropy,random,tree,resample_step",
        resample_rows=1,
        k=2,
        seed=0,
        cache_dir=str(tmp_path),
    )
    out = rw.measure("some", a)
    if "skipped" in out:
        pytest.skip(out["skipped"])
    assert set(out["scorers"]) == {"perturbation", "entropy", "random", "tree", "resample_step"}
    assert out["scorers"]["resample_step"]["rows"] == 1  # --resample-rows: the first row only
    assert out["scorers"]["perturbation"]["fidelity"]["vs_exact_oar_p"]["spearman"] == pytest.approx(1.0)
    assert "vs_itself_seed1" in out["scorers"]["random"]["fidelity"]  # a scorer that draws: its own noise
    for name, r in out["scorers"].items():
        assert set(r["weights"]) == set(rw.ROLES) and r["rows"] == (
            1 if name == "resample_step" else out["rows"]
        )
        assert all(w is None or (math.isfinite(w) and w > 0) for w in r["weights"].values())


def test_role_weights_credit_gives_every_family_its_needs_and_the_table_prints_them(tmp_path):
    rw, ft = _load("role_weights_credit"), _load("families_table")
    a = argparse.Namespace(
        task="flag", fidelity=False, prompts=3, group=4, methods="gtpo,anchor,hicra,prime,cdpo",
        resample_rows=1, k=2, seed=0, cache_dir=str(tmp_path),
    )  # fmt: skip
    out = rw.measure("some", a)
    if "skipped" in out:
        pytest.skip(out["skipped"])
    s = out["scorers"]
    assert "skipped" in s["cdpo"]  # the flag task has no second model: not faked
    assert "uniform by construction" in s["prime"]["note"]  # reference = the policy: implicit reward 0
    assert all(w is None or w == pytest.approx(1.0) for w in s["prime"]["weights"].values())
    assert all(r["grpo_step_seconds"] == out["grpo_step_seconds"] for n, r in s.items() if n != "cdpo")
    md = ft.table(out)
    assert all(f"| `{n}`" in md for n in s) and "[1] reference_model" in md


def test_real_lm_mechanism_reads_each_arms_scorer_and_step_cost(tmp_path):
    """The mechanism test maps arms to their scorer's role weights (``resample`` to ``resample_step``) and
    ranks them against ΔAUC; the step cost is the median over the kept logs, first step dropped, over GRPO's."""
    mech = _load("real_lm_mechanism")
    scorers = {
        "oracle": {"weights": {"decision": 3.0}},
        "gradient": {"weights": {"decision": 0.5}},
        "resample_step": {"weights": {"decision": 2.0}},
        "resample": {"weights": {"decision": -9.0}},
    }
    paired = {arm: {"auc_sampled": {"diff": {"mean": d}, "n": 5}} for arm, d in
              [("oracle", 0.06), ("oar_g", -0.01), ("resample", 0.03)]}  # fmt: skip
    h2 = mech.mechanism(paired, scorers)
    assert [r["decision_weight"] for r in h2["rows"]] == [1.0, 3.0, 0.5, 2.0]
    assert h2["spearman"] == pytest.approx(1.0)

    (tmp_path / "runs").mkdir()
    summaries = []
    for arm, times in [("grpo", [99.0, 10.0, 12.0, 14.0]), ("oar_g", [99.0, 20.0, 24.0, 28.0])]:
        key = f"c__{arm}__seed1"
        summaries.append(json.dumps({"key": key, "arm": arm, "condition": "c"}))
        lines = [{"step": 0, "accuracy": 0.5}]
        lines += [{"loss": 0.0, "step_time": t, "oar/scorer_seconds": t / 2} for t in times]
        (tmp_path / "runs" / f"{key}.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    kept_no_log = {"key": "c__oracle__seed1", "arm": "oracle", "condition": "c"}
    summaries.append(json.dumps(kept_no_log))
    (tmp_path / "summaries.jsonl").write_text("\n".join(summaries))
    cost = mech.step_cost(tmp_path, "c")
    assert set(cost) == {"grpo", "oar_g"}
    assert cost["grpo"]["median_step_s"] == pytest.approx(12.0)
    assert cost["oar_g"]["median_scorer_s"] == pytest.approx(12.0)
    assert cost["oar_g"]["ratio_to_grpo"] == pytest.approx(2.0)
