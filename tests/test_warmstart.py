"""Warm starts: keyed by the data they train on, shipped for the demo and the study, found before training.

The shipped checkpoints (``oarl warmstart --ship``) are what makes a fresh clone's ``make demo`` tell the same
story on every machine; if the flag task's SFT data changes, the key changes and the first test below fails
until they are re-made with that command.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from oarl.lab.testbed.tasks import get_task_recipe
from oarl.lab.testbed.tasks.flag import CHATTER_LEVELS
from oarl.lab.testbed.warmstart import SHIPPED_DIR, cache_key, checkpoint_name, find_warm_start, warm_start

RECIPE = get_task_recipe("flag")


@pytest.mark.parametrize("chatter", sorted(CHATTER_LEVELS))
def test_the_demo_and_study_warm_starts_ship_and_match_the_task(chatter, tmp_path):
    task = RECIPE.make(replace(RECIPE.config, chatter=chatter))
    name = checkpoint_name(task, RECIPE.warm_start)
    shipped = SHIPPED_DIR / name
    assert (shipped / "config.json").exists(), (
        f"no shipped warm start {name} for chatter={chatter}: the task's SFT data or settings changed; "
        f"re-make them with `oarl warmstart --chatter none,some,heavy --ship`"
    )
    meta = json.loads((shipped / "oarl_warmstart.json").read_text())
    assert meta["task"] == json.loads(json.dumps(task.identity()))
    assert meta["held_out"]["greedy"] >= 0.9  # the check `--ship` made before copying it
    # found without training, and without touching the cache
    assert warm_start(task, RECIPE.warm_start, tmp_path / "cache") == shipped
    assert not (tmp_path / "cache").exists()


def test_the_key_follows_the_data_not_the_code():
    task = RECIPE.make(RECIPE.config)
    ws = RECIPE.warm_start
    assert cache_key(task, ws) == cache_key(RECIPE.make(RECIPE.config), ws)
    other_data = RECIPE.make(replace(RECIPE.config, fidelity=0.7))
    assert cache_key(other_data, ws) != cache_key(task, ws)
    assert cache_key(task, replace(ws, max_steps=10)) != cache_key(task, ws)
    assert find_warm_start(other_data, replace(ws, max_steps=3), "/nonexistent") is None


def test_the_shipped_warm_starts_live_in_the_repository_not_the_wheel():
    """checkpoints/ sits at the repository's root (no package data: `pip install oarl` carries no weights)."""
    from pathlib import Path

    from oarl.lab.testbed.warmstart import shipping_dir

    root = Path(__file__).resolve().parents[1]
    assert SHIPPED_DIR == root / "checkpoints" == shipping_dir()
    assert not any((root / "src").rglob("*.safetensors"))


def test_ship_outside_a_source_checkout_is_refused(monkeypatch, tmp_path, capsys):
    from oarl.cli import warmstart as cli
    from oarl.lab.testbed import warmstart

    monkeypatch.setattr(warmstart, "REPO", tmp_path)  # as from an installed wheel: no pyproject.toml there
    assert cli.main(["--ship", "--chatter", "none"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_wordop_chatter_is_checked_before_any_training(capsys):
    from oarl.cli import warmstart as cli

    assert cli.main(["--task", "wordop", "--chatter", "loud"]) == 2
    err = capsys.readouterr().err
    assert "unknown chatter 'loud'" in err and "heavy" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fidelity", "0.55"], "--task wordop only"),  # the flag task has no fidelity to set
        (["--task", "wordop", "--fidelity", "1.5"], "must be in [0, 1]"),
    ],
)
def test_fidelity_is_checked_before_any_training(argv, message, capsys):
    from oarl.cli import warmstart as cli

    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
