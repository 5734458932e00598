"""`oarl fidelity`: scorers vs exact OAR-P on a checkpoint's task and a random-init model, noise sweep."""

from __future__ import annotations

import json

import pytest
import torch

from oarl.cli import fidelity
from oarl.lab.testbed import fidelity_study as fs


def test_random_batch_layout():
    b = fs.random_batch(vocab_size=50, rows=3, prompt=4, reasoning=6, answer=2, seed=1)
    assert b["input_ids"].shape == (3, 12) and (b["input_ids"] >= 1).all()
    assert b["reasoning_mask"].sum().item() == 18 and b["answer_mask"][:, -2:].all()
    with pytest.raises(ValueError, match="unknown shape"):
        fs.random_model("huge")


def test_evaluate_and_noise_sweep_on_a_random_model():
    model = fs.random_model("tiny")
    batch = fs.random_batch(model.config.vocab_size, rows=2, prompt=3, reasoning=8, answer=2)
    res = fs.evaluate(model, batch, ["gradient", "linearized"], ["as_mean"], other_mask_id=1, noise_std=1e-2)
    rows = res["as_mean"]
    assert list(rows) == ["perturbation", "perturbation@other_mask", "gradient", "linearized"]
    assert rows["perturbation"]["spearman"]["mean"] == pytest.approx(1.0)
    assert rows["gradient"]["cost_ratio"]["seconds"] == pytest.approx(1.0)
    n = batch["input_ids"].numel()
    assert (
        rows["linearized"]["cost"]["grad_tokens"] == n
    )  # one recorded forward, three backwards (M = 2 + rest)
    assert rows["linearized"]["cost"]["backward_tokens"] == 3 * n
    assert rows["gradient"]["cost"]["backward_tokens"] == n
    sweep = fs.noise_sweep(model, batch, [1e-3, 1e-1])
    assert [r["dtype"] for r in sweep["rows"]] == ["float32", "float32", "float64", "float64"]
    assert next(model.parameters()).dtype == torch.float32  # restored
    # float32 and float64 agree on the ranking at moderate noise (precision is not what limits OAR-G here)
    s32, s64 = sweep["rows"][1]["spearman"]["mean"], sweep["rows"][3]["spearman"]["mean"]
    assert s32 == pytest.approx(s64, abs=0.05)


def test_cli_fidelity_writes_json_tables_and_figures(arith_model, tmp_path, capsys):
    out = tmp_path / "f.json"
    argv = ["--models", f"tiny={arith_model}", "--samples", "6", "--completions", "gold", "--shape", "tiny", "--random-rows", "2",
            "--random-reasoning", "6", "--probes", "as_mean", "--methods", "gradient,linearized",
            "--noises", "1e-3,1e-1", "--time-repeats", "1", "--out", str(out)]  # fmt: skip
    assert fidelity.main(argv) == 0
    res = json.loads(out.read_text())["settings"]
    assert set(res) == {"tiny", "random-tiny"}
    assert "recall" in res["tiny"]["results"]["as_mean"]["linearized"]
    assert "recall" not in res["random-tiny"]["results"]["as_mean"]["linearized"]
    assert len(res["tiny"]["noise_sweep"]["rows"]) == 4
    assert res["tiny"]["timing_ratio"]["gradient"] == pytest.approx(1.0)
    assert set(res["tiny"]["timing"]) == {"perturbation", "gradient", "linearized"}
    assert (tmp_path / "fidelity_cost.png").stat().st_size > 0 and (tmp_path / "fidelity_noise.png").exists()
    assert "Spearman" in capsys.readouterr().out
    table = out.with_suffix(".md").read_text()
    assert table.count("\n") == 2 + 2 * 4  # header + (perturbation, other mask, gradient, linearized) x 2


def test_cli_fidelity_rejects_bad_input(arith_model, tmp_path):
    base = ["--shape", "none", "--samples", "2", "--completions", "gold", "--noises", "", "--out",
            str(tmp_path / "x.json")]  # fmt: skip
    assert fidelity.main(["--models", f"m={arith_model}", "--methods", "nope", *base]) == 2
    assert fidelity.main(["--models", f"m={arith_model}", "--other-mask", "zz", *base]) == 2
    assert fidelity.main(["--models", "none", "--shape", "huge", "--out", str(tmp_path / "y.json")]) == 2
    sampled = ["--shape", "none", "--samples", "2", "--noises", "", "--out", str(tmp_path / "z.json")]
    assert fidelity.main(["--models", f"m={arith_model}", *sampled]) == 2  # random weights: no answer spans
