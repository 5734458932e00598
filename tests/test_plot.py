"""`oarl plot`: several runs' metrics.jsonl on one figure, via oarl.lab.viz.plots.read_metrics / curves."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import pytest

from oarl.cli import main as cli_main
from oarl.cli.plot import load_runs
from oarl.cli.plot import main as plot_main


def write_run(path, labels=("GRPO", "OAR-P"), steps=3, offset=0.0):
    path.mkdir(parents=True)
    lines = []
    for label in labels:
        lines.append({"label": label, "method": label.lower(), "step": 0, "accuracy": 0.1 + offset})
        for s in range(1, steps + 1):
            lines.append({"label": label, "step": s, "reward": 0.1 * s + offset, "entropy": 1.0 - 0.1 * s,
                          "oar/ess_ratio": 0.7, "oar/top10_adv_share": 0.2, "loss": 0.0})  # fmt: skip
        lines.append({"label": label, "step": steps, "accuracy": 0.3 + offset})
    lines.append({"note": "a line without a step is skipped"})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_plot_several_runs_on_one_figure(tmp_path, capsys):
    a = write_run(tmp_path / "run-a")
    b = write_run(tmp_path / "run-b", labels=("GRPO",), offset=0.2)
    out = tmp_path / "figs" / "curves.png"
    assert cli_main(["plot", str(a), str(b), "--out", str(out), "--title", "two runs"]) == 0
    image = mpimg.imread(out)
    assert image.shape[1] > 1.5 * image.shape[0]  # five panels on a 2 x 3 grid
    assert "3 lines from 2 run(s)" in capsys.readouterr().out


def test_labels_keep_runs_apart_unless_merged(tmp_path):
    a = write_run(tmp_path / "run-a")
    b = write_run(tmp_path / "run-b", labels=("GRPO",), offset=0.2)
    labels = {r["label"] for r in load_runs([a, b]) if "step" in r}
    assert labels == {"run-a/GRPO", "run-a/OAR-P", "run-b/GRPO"}
    merged = [r for r in load_runs([a, b], merge=True) if r.get("step") == 1 and "reward" in r]
    assert sorted(r["reward"] for r in merged if r["label"] == "GRPO") == pytest.approx([0.1, 0.3])
    assert {r["label"] for r in load_runs([a]) if "step" in r} == {"GRPO", "OAR-P"}  # one run: no prefix
    c = write_run(tmp_path / "other" / "run-a")  # same folder name: the given paths tell them apart
    assert {r["label"] for r in load_runs([a, c]) if "step" in r} >= {f"{a}/GRPO", f"{c}/GRPO"}


def test_plot_errors(tmp_path, capsys):
    assert plot_main([str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    assert plot_main([str(empty), "--out", str(tmp_path / "x.png")]) == 2
    assert "nothing to plot" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_rolling_mean_is_a_trailing_window():
    from oarl.lab.viz.plots import _rolling

    values = [1.0, 3.0, 5.0, 7.0, 9.0]
    expect = [sum(values[max(0, i - 2) : i + 1]) / len(values[max(0, i - 2) : i + 1]) for i in range(5)]
    # _rolling keeps a running sum (adds the new value, subtracts the old): another order of float operations
    # than sum(window) / n, equal here only because these values are small integers. Compare to round-off.
    assert _rolling(values, 3) == pytest.approx(expect, rel=1e-12)
    assert _rolling(values, 1) == pytest.approx(values, rel=1e-12)


def write_study(path, conditions=("chatter=some",), arms=("GRPO", "oracle"), seeds=(0, 1)):
    """The layout oarl demo / oarl study write: OUT/runs/<condition>__<arm>__seed<k>.jsonl."""
    (path / "runs").mkdir(parents=True)
    for cond in conditions:
        for arm in arms:
            for seed in seeds:
                tag = {"label": arm, "condition": cond, "seed": seed}
                lines = [{**tag, "step": s, "sampled_accuracy": 0.5 + 0.1 * s + 0.01 * seed} for s in (0, 10)]
                lines += [{**tag, "step": s, "reward": 0.5, "loss": 0.0} for s in (1, 2)]
                key = f"{cond}__{arm}__seed{seed}"
                (path / "runs" / f"{key}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_plot_reads_demo_and_study_folders(tmp_path, capsys):
    demo = write_study(tmp_path / "demo")
    records = [r for r in load_runs([demo]) if "sampled_accuracy" in r]
    assert {r["label"] for r in records} == {"GRPO", "oracle"}  # seeds pool into one line per arm
    assert sorted(r["sampled_accuracy"] for r in records if r["label"] == "GRPO" and r["step"] == 10) == (
        pytest.approx([1.5, 1.51])
    )
    study = write_study(tmp_path / "study", conditions=("chatter=none", "chatter=heavy"), arms=("GRPO",))
    assert {r["label"] for r in load_runs([study])} == {"chatter=none/GRPO", "chatter=heavy/GRPO"}
    assert {r["label"] for r in load_runs([study / "runs"])} == {"chatter=none/GRPO", "chatter=heavy/GRPO"}
    out = tmp_path / "demo.png"
    assert cli_main(["plot", str(demo), "--out", str(out)]) == 0
    assert out.exists() and "2 lines from 1 run(s)" in capsys.readouterr().out
    assert plot_main([str(tmp_path / "nothing-here"), "--out", str(out)]) == 2
    assert "oarl train, demo or study folder" in capsys.readouterr().err
