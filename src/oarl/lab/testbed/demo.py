"""The demo's presets (which task and budget each ``oarl demo --model`` runs), its task and warm start (the
default checkpoint of ``oarl oracle-eval``, ``oarl fidelity`` and ``oarl attribute``) and the task a
checkpoint was trained on. The demo's attribution strip is :func:`oarl.lab.viz.demo.attribution_strip`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from oarl.lab.testbed.tasks import get_task_recipe, task_from_identity

#: ``oarl demo --quick``: a tiny smoke run of the tiny model (tests).
QUICK = dict(
    sft_steps=20,
    sft_problems=256,
    steps=2,
    prompts_per_step=2,
    num_generations=4,
    eval_problems=8,
    eval_every=1,
    eval_samples=1,
    max_completion_length=40,
    arms="grpo,oar_p,oracle",
    workers=1,
)

#: The demo of each model: the testbed task it runs and its defaults (a field left at None takes these).
MODELS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        task="flag",
        arms="grpo,oar_p,entropy,oracle",
        chatter="some",
        steps=40,
        prompts_per_step=8,
        num_generations=8,
        eval_every=10,
        eval_problems=64,
    ),
    # the real-LM study's budget, 15 steps of 4 x 4 rows: GRPO's pilot gained +0.20 to +0.33 by then on each of
    # three seeds (docs/real_lm_study.md, amendment 2)
    "smollm2-135m": dict(
        task="wordop",
        arms="grpo,oar_g,oracle,tree",
        chatter=None,
        steps=15,
        prompts_per_step=4,
        num_generations=4,
        eval_every=5,
        eval_problems=32,
    ),
}


def demo_task(model: str = "tiny", chatter: str | None = None) -> Any:
    """The task ``oarl demo --model MODEL`` trains on (``tiny``: the flag task with some chatter), with
    ``chatter`` over the model's default where given."""
    preset = MODELS[model]
    recipe = get_task_recipe(preset["task"])
    chatter = chatter if chatter is not None else preset["chatter"]
    return recipe.make(recipe.config if chatter is None else replace(recipe.config, chatter=chatter))


def demo_warm_start(cache_dir: str | Path) -> Path:
    """The tiny demo's default warm-start checkpoint (shipped, else trained and cached on first use)."""
    recipe = get_task_recipe(MODELS["tiny"]["task"])
    return Path(recipe.checkpoint(demo_task(), recipe.warm_start, str(cache_dir)))


def checkpoint_task(path: str | Path | None, default: str | None = None) -> Any:
    """The task a warm start was trained on (its ``oarl_warmstart.json``), else ``default`` (``"arith"``: the
    arithmetic task's defaults) or the demo's task."""
    meta = Path(path) / "oarl_warmstart.json" if path is not None else None
    if meta is None or not meta.exists():
        return task_from_identity({"task": "arith"}) if default == "arith" else demo_task()
    return task_from_identity(json.loads(meta.read_text())["task"])
