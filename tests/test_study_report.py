"""`oarl study --report-only` on a finished folder: its plan's runs only, the contrasts, and the config untouched."""

from __future__ import annotations

import json

from oarl.cli.study import main


def fake_run(out, arm: str, seed: int, gain: float) -> None:
    key = f"arith__{arm}__seed{seed}"
    summary = {"arm": arm, "label": arm, "method": arm, "seed": seed, "condition": "arith", "key": key,
               "steps": 2, "seconds": 1.0}  # fmt: skip
    with (out / "summaries.jsonl").open("a") as f:
        f.write(json.dumps(summary) + "\n")
    curve = [
        {"step": s, "accuracy": 0.5, "sampled_accuracy": 0.5 + gain * s / 2 + 0.01 * seed} for s in (0, 1, 2)
    ]
    (out / "runs" / f"{key}.jsonl").write_text("".join(json.dumps({**summary, **c}) + "\n" for c in curve))


def test_report_only_keeps_the_config_and_reports_its_plan(tmp_path):
    out = tmp_path / "study"
    (out / "runs").mkdir(parents=True)
    for seed in range(3):
        fake_run(out, "grpo", seed, 0.1)
        fake_run(out, "oracle", seed, 0.2 + 0.01 * seed)
        fake_run(out, "random", seed, 0.0)  # an earlier plan's arm: not reported
    (out / "config.yaml").write_text("command: the command that ran\n")
    args = ["--task", "arith", "--arms", "grpo,oracle", "--seeds", "0-2", "--out", str(out), "--report-only",
            "--contrasts", "oracle"]  # fmt: skip
    assert main(args) == 0
    assert (out / "config.yaml").read_text() == "command: the command that ran\n"  # exact: untouched
    results = json.loads((out / "results.json").read_text())
    assert set(results["conditions"]["arith"]["arms"]) == {"grpo", "oracle"}
    tests = json.loads((out / "contrasts.json").read_text())["conditions"]["arith"]["arms"]["oracle"]
    assert tests["grpo"]["wins"] == 3 and tests["grpo"]["diff"]["mean"] > 0
    assert (out / "paired.png").stat().st_size > 0 and (out / "gaps.png").stat().st_size > 0  # the figures
