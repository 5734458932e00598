"""Side-by-side summary of oarl train runs (reward curves, step-time ratios to GRPO)."""

from __future__ import annotations

import json

import pytest

from oarl.lab.math.rl_summary import main, summarize_runs


def _run(folder, times, rewards):
    folder.mkdir(parents=True)
    lines = [
        {"step": i + 1, "loss": 0.0, "reward": r, "step_time": t}
        for i, (t, r) in enumerate(zip(times, rewards, strict=True))
    ]
    lines.append({"step": 2, "train_runtime": 9.0})  # an end-of-run record: not a step
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_ratios_and_curves(tmp_path):
    _run(tmp_path / "grpo", [10.0, 12.0, 11.0], [0.1, 0.2, 0.3])
    _run(tmp_path / "oar-g", [13.0, 13.2, 14.0], [0.1, 0.1, 0.4])
    out = summarize_runs(tmp_path)
    assert out["arms"]["grpo"]["step_time_ratio_to_grpo"] == 1.0
    assert abs(out["arms"]["oar-g"]["step_time_ratio_to_grpo"] - 13.2 / 11.0) < 1e-12
    assert [s["step"] for s in out["arms"]["oar-g"]["steps"]] == [1, 2, 3]
    assert main([str(tmp_path), "--out", str(tmp_path / "s.json"), "--meta", '{"command": "x"}']) == 0
    assert json.loads((tmp_path / "s.json").read_text())["command"] == "x"


def test_empty_folder_fails_loudly(tmp_path):
    with pytest.raises(ValueError, match="no <arm>/metrics.jsonl"):
        summarize_runs(tmp_path)
