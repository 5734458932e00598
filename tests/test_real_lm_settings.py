"""The real-LM path's settings: LoRA and bf16 as RL settings, the recipe's warm start, the demo's --model and the
study's device. Cheap checks (no model load), plus one tiny end-to-end smollm2 demo run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from oarl.cli.demo import MODELS, DemoArguments, settings
from oarl.lab.testbed.experiment import RLSettings
from oarl.lab.testbed.lora_warmstart import LoraSFTConfig, shipped_adapter
from oarl.lab.testbed.tasks import get_task_recipe


def test_lora_rank_builds_the_peft_config_and_zero_trains_all_weights():
    assert RLSettings().lora_config() is None
    cfg = RLSettings(lora_rank=8, lora_targets=["q_proj"]).lora_config()
    assert (cfg.r, cfg.lora_alpha, set(cfg.target_modules)) == (8, 16, {"q_proj"})
    with pytest.raises(ValueError, match="lora_rank"):
        RLSettings(lora_rank=-1)
    with pytest.raises(ValueError, match="device"):
        RLSettings(device="tpu")


def test_wordop_recipe_starts_from_the_shipped_adapter_with_lora_and_bf16(tmp_path):
    recipe = get_task_recipe("wordop")
    task = recipe.make(recipe.config)
    assert isinstance(recipe.warm_start, LoraSFTConfig)
    assert recipe.checkpoint(task, recipe.warm_start, str(tmp_path)) == str(
        shipped_adapter(task, recipe.warm_start)
    )
    assert not list(tmp_path.iterdir())  # nothing trained or cached
    assert recipe.rl.lora_rank == 16 and recipe.rl.bf16
    assert recipe.with_sft_steps(7).steps == 7
    assert get_task_recipe("flag").with_sft_steps(7).max_steps == 7


def test_demo_models_fill_their_own_defaults():
    task, _, rl = settings(DemoArguments())
    assert task.name == "flag" and rl.steps == MODELS["tiny"]["steps"] and rl.prompts_per_step == 8
    args = DemoArguments(model="smollm2-135m")
    task, ws, rl = settings(args)
    assert task.name == "wordop" and isinstance(ws, LoraSFTConfig)
    assert (rl.steps, rl.prompts_per_step, rl.num_generations, rl.lora_rank, rl.bf16) == (15, 4, 4, 16, True)
    assert args.arms == MODELS["smollm2-135m"]["arms"]
    _, _, rl = settings(DemoArguments(model="smollm2-135m", steps=3, learning_rate=1e-4))
    assert (rl.steps, rl.learning_rate) == (3, 1e-4)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(model="smollm2-135m", chatter="heavy"), "--chatter"),
        (dict(model="smollm2-135m", quick=True), "--quick"),
        (dict(model="smollm2-135m", sft_steps=5), "--sft"),
        (dict(model="gpt2"), "unknown --model"),
    ],
)
def test_demo_refuses_what_does_not_apply_to_the_model(bad, match):
    with pytest.raises(ValueError, match=match):
        settings(DemoArguments(**bad))


def test_smollm2_demo_runs_end_to_end(tmp_path):
    """One RL step of two arms from the shipped adapter, every output file written."""
    from oarl.cli.demo import run

    args = DemoArguments(
        model="smollm2-135m",
        out_dir=str(tmp_path / "demo"),
        cache_dir=str(tmp_path / "cache"),
        arms="grpo,tree",
        steps=1,
        prompts_per_step=2,
        num_generations=2,
        eval_problems=2,
        eval_samples=1,
        eval_every=1,
        max_completion_length=24,
        workers=1,
    )
    assert run(args) == 0
    (run_dir,) = list((tmp_path / "demo").iterdir())
    for name in ("results.json", "table.md", "curves.png", "attribution.png", "config.yaml"):
        assert (run_dir / name).exists(), name


def test_study_device_reaches_the_settings():
    from oarl.cli.study import build_parser

    assert build_parser().parse_args(["--device", "cuda"]).device == "cuda"
    assert replace(RLSettings(), device="cuda").device == "cuda"
