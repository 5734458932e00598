"""``oarl eval``: generations JSONL + summary JSON on math JSONL and the arith task; the pass@k estimator."""

from __future__ import annotations

import itertools
import json
from math import comb

import pytest

from oarl.cli import eval_cmd
from oarl.cli import main as cli
from oarl.lab.math.evaluation import mean_pass_at_k, pass_at_k
from oarl.lab.math.rewards import check_answer

GEN_KEYS = {"row", "sample", "question", "reference", "completion", "answer", "correct", "reason"}
REASONS = {"correct", "wrong", "no_answer", "bad_reference", "timeout"}


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) that hold at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_equals_the_combinatorial_count():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = brute_force_pass_at_k(n, c, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)
                assert expected == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)
    assert pass_at_k(200, 3, 100) == pytest.approx(1 - comb(197, 100) / comb(200, 100), rel=1e-12)
    assert mean_pass_at_k([0, 2, 4], n=4, k=1) == pytest.approx((0 + 0.5 + 1) / 3)
    for bad in [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    with pytest.raises(ValueError, match="no problems"):
        mean_pass_at_k([], n=4, k=1)


def read_outputs(out_dir):
    rows = [json.loads(x) for x in (out_dir / "generations.jsonl").read_text().splitlines()]
    return rows, json.loads((out_dir / "summary.json").read_text())


def check_files(out_dir, n_rows: int, n: int, ks: list[int]) -> tuple[list[dict], dict]:
    """Both files exist and agree: every generation graded, summary pass@k recomputed from the rows."""
    rows, summary = read_outputs(out_dir)
    assert len(rows) == n_rows * n and all(set(r) == GEN_KEYS for r in rows)
    assert {(r["row"], r["sample"]) for r in rows} == set(itertools.product(range(n_rows), range(n)))
    assert all(r["reason"] in REASONS for r in rows)
    counts = [sum(bool(r["correct"]) for r in rows if r["row"] == i) for i in range(n_rows)]
    assert summary["rows"] == n_rows and summary["ungradable_rows"] == 0
    for k in ks:
        assert summary[f"pass@{k}"] == pytest.approx(
            sum(brute_force_pass_at_k(n, c, k) for c in counts) / n_rows
        )
    assert summary["answer_rate"] == pytest.approx(sum(r["answer"] is not None for r in rows) / len(rows))
    return rows, summary


def test_eval_on_five_math_jsonl_rows(tiny_math_model, tmp_path):
    from oarl.lab.math.data import load_gsm8k

    gsm = load_gsm8k("test").select(range(5))
    data = tmp_path / "mine.jsonl"  # a user file with its own field names and numeric answers
    data.write_text("".join(json.dumps({"problem": q, "final": int(a.replace(",", ""))}) + "\n"
                            for q, a in zip(gsm["question"], gsm["answer"], strict=True)))  # fmt: skip
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(tiny_math_model), "--data", str(data), "--question-field", "problem",
            "--answer-field", "final", "--n", "4", "--k", "1,4", "--temperature", "1.0",
            "--max-new-tokens", "24", "--out_dir", str(out), "--progress", "false"]  # fmt: skip
    assert cli(argv) == 0
    rows, summary = check_files(out, n_rows=5, n=4, ks=[1, 4])
    assert summary["prompt_style"] == "chat" and summary["backend"] == "hf"
    assert [r["reference"] for r in rows[::4]] == [a.replace(",", "") for a in gsm["answer"]]
    assert summary["answer_rate"] > 0  # the fitted tiny model writes '#### x' in most samples
    for r in rows:  # the recorded answer and verdict are what the reward computes
        verdict = check_answer(r["completion"], r["reference"])
        if "timeout" in (r["reason"], verdict.reason):
            continue  # a wall-clock verdict: a loaded machine can time out in one run and not the other
        assert (r["answer"], r["correct"], r["reason"]) == (verdict.answer, verdict.correct, verdict.reason)


def test_eval_on_the_arith_task_checkpoint(tmp_path):
    from oarl.lab.testbed import tiny_model
    from oarl.lab.testbed.tasks import arith

    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(tok, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(tmp_path / "ckpt"), "--data", "arith", "--limit", "5", "--n", "2",
            "--k", "1,2", "--max-new-tokens", "8", "--out_dir", str(out), "--progress", "false"]  # fmt: skip
    assert cli(argv) == 0
    rows, summary = check_files(out, n_rows=5, n=2, ks=[1, 2])
    assert summary["prompt_style"] == "raw" and summary["data"] == "arith"
    held_out = arith.generate_problems(5, arith.ArithConfig(seed=30_000))
    assert [r["question"] for r in rows[::2]] == [p.prompt for p in held_out]


def test_grading_and_pass_at_k_with_known_completions(tmp_path, monkeypatch):
    """Generation replaced by fixed completions: the verdicts and pass@k are exactly the expected ones."""
    data = tmp_path / "q.jsonl"
    data.write_text('{"question": "1+1?", "answer": 2}\n{"question": "half?", "answer": "\\\\frac{1}{2}"}\n')
    fixed = [["#### 2", "\\boxed{3}", "no answer", "The answer is 2."], ["\\boxed{0.5}"] + ["#### 7"] * 3]
    monkeypatch.setattr(eval_cmd, "_generate_hf", lambda args, tok, texts, add_special_tokens: fixed)
    args = eval_cmd.EvalArguments(model=str(tmp_path / "unused"), data=str(data), n=4, k="1,2,4",
                                  out_dir=str(tmp_path / "eval"), progress=False, backend="hf")  # fmt: skip
    tok_dir = tmp_path / "unused"
    from oarl.lab.testbed.tiny_math import build_math_tokenizer

    build_math_tokenizer(["1+1? half?"], vocab_size=270).save_pretrained(tok_dir)
    summary = eval_cmd.run(args)
    rows, saved = read_outputs(tmp_path / "eval")
    assert saved == summary
    assert [r["reason"] for r in rows] == ["correct", "wrong", "no_answer", "correct", "correct"] + [
        "wrong"
    ] * 3
    assert [r["answer"] for r in rows[:4]] == ["2", "3", None, "2"]
    assert summary["pass@1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert summary["pass@2"] == pytest.approx(
        ((1 - comb(2, 2) / comb(4, 2)) + (1 - comb(3, 2) / comb(4, 2))) / 2
    )
    # pass@4 == 1.0 exactly: with n - c < k the code returns 1.0 for each row, and so does their mean.
    assert summary["pass@4"] == 1.0 and summary["answer_rate"] == pytest.approx(7 / 8)


def test_prompts_over_the_context_are_counted_and_skipped_truncated_or_refused(tmp_path, capsys):
    from oarl.lab.testbed import tiny_model

    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(tok, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    context = model.config.max_position_embeddings
    data = tmp_path / "q.jsonl"
    questions = ["a=1;?a\n", "b=2;" * context + "?b\n", "c=3;?c\n"]  # the middle one cannot fit
    data.write_text("".join(json.dumps({"question": q, "answer": "1"}) + "\n" for q in questions))
    base = ["eval", "--model", str(tmp_path / "ckpt"), "--data", str(data), "--prompt-style", "raw",
            "--max-new-tokens", "8", "--progress", "false"]  # fmt: skip
    for policy, rows in (("skip", 2), ("truncate", 3)):
        out = tmp_path / policy
        assert cli([*base, "--out_dir", str(out), "--long_prompts", policy]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["rows"] == rows
        assert summary["long_prompts"] == {"count": 1, "policy": policy, "context": context, "rows": [1]}
        assert f"1 prompt(s) over the {context}-token context" in capsys.readouterr().out
    assert cli([*base, "--out_dir", str(tmp_path / "e"), "--long_prompts", "error"]) == 2
    assert "exceed the model's" in capsys.readouterr().err
