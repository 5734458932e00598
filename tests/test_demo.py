"""The demo's --quick path end to end (warm start, attribution, RL arms, files), and the CLI's entry."""

import json

from oarl.cli import main as cli_main
from oarl.cli.demo import DemoArguments, run


def test_demo_quick_end_to_end(tmp_path):
    args = DemoArguments(quick=True, out_dir=str(tmp_path / "demo"), cache_dir=str(tmp_path / "cache"))
    assert run(args) == 0
    (run_dir,) = list((tmp_path / "demo").iterdir())
    for name in ("results.json", "table.md", "curves.png", "entropy.png", "attribution.png", "config.yaml"):
        assert (run_dir / name).stat().st_size > 0, name
    results = json.loads((run_dir / "results.json").read_text())
    (cond,) = results["conditions"].values()
    assert set(cond["arms"]) == {"grpo", "oar_p", "oracle"}
    assert cond["curves"]["grpo"]["step"] == [0, 1, 2]
    # The warm start is cached: a second run reuses it (same checkpoint path).
    args = DemoArguments(quick=True, out_dir=str(tmp_path / "demo"), cache_dir=str(tmp_path / "cache"))
    assert run(args) == 0
    # The new folder, found without relying on how the time-stamped names sort.
    (again,) = set((tmp_path / "demo").iterdir()) - {run_dir}
    assert json.loads((again / "results.json").read_text())["checkpoint"] == results["checkpoint"]


def test_cli_help_and_unknown_command(capsys):
    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "study" in out
    assert cli_main(["nope"]) == 2


def test_latest_link_is_made_where_no_cache_exists_yet(tmp_path):
    """A fresh clone finds the shipped warm start, so the cache folder the link goes in does not exist yet."""
    from oarl.utils.atomic import link_latest

    target = tmp_path / "shipped" / "flag-sft-x"
    target.mkdir(parents=True)
    link = link_latest(target, tmp_path / "runs" / "cache" / "flag-sft-latest")
    assert link.resolve() == target.resolve()


def test_attribution_strip_gates_with_every_gate_setting(tmp_path, monkeypatch):
    """The strip's weights use the run's tau, beta *and* floor (floor was left at its default)."""
    from dataclasses import replace

    import oarl.cli.demo as demo
    from oarl.batch import credit
    from oarl.lab.testbed.warmstart import warm_start
    from oarl.lab.viz import plots
    from oarl.lab.viz.demo import attribution_strip

    task, ws, rl = demo.settings(DemoArguments())
    rl = replace(rl, oar=replace(rl.oar, tau=0.3, beta=1.5, floor=0.25))
    seen = []
    real = credit.score_and_gate
    monkeypatch.setattr(credit, "score_and_gate", lambda *a, **k: seen.append(a[2]) or real(*a, **k))
    monkeypatch.setattr(plots, "attribution_strip", lambda *a, **k: None)
    attribution_strip(warm_start(task, ws, str(tmp_path)), task, rl, tmp_path / "a.png")
    assert seen and all((s.tau, s.beta, s.floor) == (0.3, 1.5, 0.25) for s in seen)
