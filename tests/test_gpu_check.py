"""``oarl gpu-check``: a clear exit without a GPU, the CPU scorer check, one arm's timed steps, the table."""

from __future__ import annotations

import json

import pytest

from oarl.cli import gpu_check


def test_without_gpu_it_exits_2_and_says_why(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--model", "/models/any"]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "--cpu" in err and "MODEL=" in err
    monkeypatch.delenv("MODEL", raising=False)
    assert gpu_check.main([]) == 2  # the default model (smollm2-135m) is used; still no GPU
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert gpu_check.parser().parse_args([]).model == "smollm2-135m"


def test_cpu_scorer_check_writes_fidelity(tiny_math_model, tmp_path, capsys):
    argv = ["--cpu", "--model", str(tiny_math_model), "--rows", "3", "--out", str(tmp_path)]
    assert gpu_check.main(argv) == 0
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert "steps" not in res  # --cpu: no trainer steps
    labels = set(res["precision"])
    assert {"perturbation", "entropy", "gradient noise_std=0.001 upcast=True"} <= labels
    upcast = res["precision"]["gradient noise_std=0.001 upcast=True"]
    assert upcast["rows"] >= 1 and upcast["spearman"] > 0.9
    assert "bf16 vs float32" in capsys.readouterr().out


def test_one_arm_timed_on_cpu_and_the_steps_table(tiny_math_model, tmp_path):
    argv = ["--arm", "oar-g", "--cpu", "--no-vllm", "--model", str(tiny_math_model), "--steps", "2",
            "--train-rows", "8", "--batch", "8", "--num-generations", "4", "--max-completion-length", "16",
            "--out", str(tmp_path)]  # fmt: skip
    assert gpu_check.main(argv) == 0
    rec = json.loads((tmp_path / "steps_oar-g.json").read_text())
    assert len(rec["step_seconds"]) == 2 and all(s > 0 for s in rec["step_seconds"])
    table = gpu_check.format_steps(
        {"grpo": {**rec, "step_seconds": [1.0, 2.0]}, "oar-g": rec, "oar-p": {"error": "x"}}
    )
    ratio = rec["step_seconds"][-1] / 2.0
    assert f"{ratio:.2f}x" in table and "| oar-p | failed |" in table


def test_unknown_arm_is_refused(tmp_path):
    args = gpu_check.parser().parse_args(["--model", "m"])
    with pytest.raises(ValueError, match="unknown arm"):
        gpu_check.time_arm_steps(args, tmp_path, "ppo")
