"""The demo's --quick path end to end (warm start, oracle recall, three RL runs, files), and `oarl plot` data."""

import json

from oarl.cli import main as cli_main
from oarl.cli.demo import DemoArguments, run


def test_demo_quick_end_to_end(tmp_path):
    args = DemoArguments(quick=True, out_dir=str(tmp_path / "demo"), cache_dir=str(tmp_path / "cache"))
    assert run(args) == 0
    (run_dir,) = list((tmp_path / "demo").iterdir())
    for name in ("metrics.jsonl", "results.json", "curves.png", "attribution.png", "config.yaml"):
        assert (run_dir / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"none", "gradient", "perturbation"}
    assert any("accuracy" in r and r["step"] == 2 for r in records)
    results = json.loads((run_dir / "results.json").read_text())
    assert [r["label"] for r in results["runs"]] == ["GRPO", "OAR-G", "OAR-P"]
    assert all(r["steps"] == 2 for r in results["runs"])
    # The warm start is cached: a second run reuses it (same checkpoint path).
    assert run(args) == 0
    again = sorted((tmp_path / "demo").iterdir())[-1]
    assert json.loads((again / "results.json").read_text())["checkpoint"] == results["checkpoint"]


def test_cli_help_and_unknown_command(capsys):
    assert cli_main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert cli_main(["nope"]) == 2
