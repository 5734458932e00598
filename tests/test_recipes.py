"""Every recipe parses into (TaskArguments, OARConfig) through ``oarl train``'s parser (no model loaded);
the paper recipes hold the paper's OAR settings; the accelerate configs load with accelerate's loader."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from trl import TrlParser

from oarl.batch.step import OARStep
from oarl.cli.train import TaskArguments
from oarl.integrations.trl.lora import LoraArguments, lora_config
from oarl.integrations.trl.trainer import OARConfig, config_settings
from oarl.lab.math import easy_arith

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TRAIN_RECIPES = sorted(p for p in RECIPES.rglob("*.yaml") if "accelerate" not in p.parts)
PAPER_SIZES = ("qwen2.5-7b", "qwen2.5-1.5b")
METHODS = {"grpo": "none", "oar-g": "gradient", "oar-p": "perturbation"}


def parse(path: Path, *flags: str) -> tuple[TaskArguments, OARConfig, LoraArguments]:
    """``oarl train``'s parsing. The GPU recipes ask for bf16, which TrainingArguments refuses on a host
    without a bf16 GPU unless ``use_cpu`` is set: on such a host (CI) the test adds ``--use_cpu true``."""
    from transformers.utils import is_torch_bf16_gpu_available

    parser = TrlParser([TaskArguments, OARConfig, LoraArguments])
    host = [] if is_torch_bf16_gpu_available() else ["--use_cpu", "true"]
    return parser.parse_args_and_config(["--config", str(path), *host, *flags])


def test_recipes_are_found():
    names = {p.relative_to(RECIPES).as_posix() for p in TRAIN_RECIPES}
    assert {f"{s}/{m}.yaml" for s in PAPER_SIZES for m in METHODS} | {"demo_arith.yaml"} <= names


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_every_recipe_parses(path):
    task, config, _ = parse(path)
    assert isinstance(task, TaskArguments) and isinstance(config, OARConfig)
    raw = yaml.safe_load(path.read_text())
    assert task.task == raw["task"] and config.oar_method == raw["oar_method"]
    assert config.output_dir == raw["output_dir"]


@pytest.mark.parametrize("size", PAPER_SIZES)
def test_paper_recipes(size):
    raws = {m: yaml.safe_load((RECIPES / size / f"{m}.yaml").read_text()) for m in METHODS}
    strip = ("oar_method", "output_dir", "oar_scorer_options")
    for (
        name,
        raw,
    ) in raws.items():  # the three methods differ only in the method, the output folder, OAR-G's upcast
        assert {k: v for k, v in raw.items() if k not in strip} == {
            k: v for k, v in raws["grpo"].items() if k not in strip
        }, name
        assert raw["output_dir"] == f"runs/paper/{size}/{name}"
    for name, method in METHODS.items():
        task, config, lora = parse(RECIPES / size / f"{name}.yaml", "--model_path", "/models/mine")
        assert task.model_path == "/models/mine"  # flags override the file (the placeholder path)
        assert (task.task, task.split, config.oar_method) == ("gsm8k", "train", method)
        # Exact: the YAML literals 0.4 and 2.0 parse to the same doubles as these.
        assert (config.oar_tau, config.oar_beta, config.oar_probe) == (0.4, 2.0, "as_mean")
        warm = config.oar_probe_warmup_steps
        step = OARStep(config_settings(config, None))
        assert warm > 0 and step.settings_at(0).probe == "lt_logits"
        assert step.settings_at(warm).probe == "as_mean"
        assert config.bf16 and config.gradient_checkpointing and config.num_generations == 8
        # Generation with TRL's vLLM, one engine per training GPU; full fine-tuning (no LoRA).
        assert config.use_vllm and config.vllm_mode == "colocate" and not lora.use_peft
        assert config.vllm_max_model_length >= config.max_completion_length + 512
    assert "Qwen2.5-" in raws["grpo"]["model_path"] and raws["grpo"]["model_path"].startswith("/path/to/")


@pytest.mark.parametrize("stage", [2, 3])
def test_accelerate_deepspeed_configs_load(stage):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(RECIPES / "accelerate" / f"zero{stage}.yaml"))
    assert str(cfg.distributed_type).endswith("DEEPSPEED") and cfg.deepspeed_config["zero_stage"] == stage
    assert cfg.mixed_precision == "bf16" and not cfg.use_cpu
    ddp = load_config_from_file(str(RECIPES / "accelerate" / "ddp.yaml"))
    assert str(ddp.distributed_type).endswith("MULTI_GPU")


def test_lora_recipe_is_one_gpu_lora_with_vllm():
    pytest.importorskip("peft")
    task, config, lora = parse(RECIPES / "qwen2.5-7b-lora" / "oar-g.yaml", "--model_path", "/models/mine")
    assert lora.use_peft and config.use_vllm and config.oar_method == "gradient"
    cfg = lora_config(lora)
    assert cfg.r == 32 and cfg.lora_alpha == 64 and cfg.target_modules == "all-linear"
    assert (
        config.per_device_train_batch_size * config.gradient_accumulation_steps % config.num_generations == 0
    )


def test_smollm2_recipes_use_the_real_model_and_the_easy_task():
    """The GPU recipes of the real model: same settings but method and output folder, the short model name
    (resolved by oarl train) and the committed easy-arithmetic training split."""
    root = RECIPES.parent
    raws = {m: yaml.safe_load((RECIPES / "smollm2-135m" / f"{m}.yaml").read_text()) for m in METHODS}
    strip = ("oar_method", "output_dir", "oar_scorer_options")
    for name, method in METHODS.items():
        assert {k: v for k, v in raws[name].items() if k not in strip} == {
            k: v for k, v in raws["grpo"].items() if k not in strip
        }
        task, config, _ = parse(RECIPES / "smollm2-135m" / f"{name}.yaml")
        assert (task.task, task.model_path, config.oar_method) == ("jsonl", "smollm2-135m", method)
        assert (root / task.data_path).is_file()
        assert (task.system_prompt, task.instruction) == (easy_arith.SYSTEM_PROMPT, easy_arith.INSTRUCTION)


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_every_recipe_passes_oarl_trains_checks_and_builds_its_settings(path):
    """``oarl train``'s own checks (no unknown key; the device rule: bf16 recipes get the CPU trainer on a host
    without a GPU) and the OAR settings the trainer builds (scorer options validated against the scorer)."""
    from oarl.cli._args import check_config_keys
    from oarl.cli.train import task_defaults

    raw = yaml.safe_load(path.read_text())
    fields = {f.name for t in (TaskArguments, OARConfig, LoraArguments) for f in dataclasses.fields(t)}
    check_config_keys(raw, fields, str(path), "train")
    task_defaults(raw["task"], raw)
    _, config, _ = parse(path)
    config_settings(config, mask_token_id=0).resolved_options()  # validated against the scorer


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_bf16_oar_g_recipes_follow_the_bf16_finding(path):
    """docs/gpu.md: OAR-G at noise 1e-3 under bf16 loses the ranking; a bf16 OAR-G recipe upcasts or uses a
    noise that stays faithful (0.1), and says why in a comment."""
    raw = yaml.safe_load(path.read_text())
    if not (raw.get("bf16") and raw.get("oar_method") == "gradient"):
        return
    upcast = (raw.get("oar_scorer_options") or {}).get("upcast")
    assert upcast or (raw.get("oar_noise_std") or 0) >= 0.1, path
    assert "docs/gpu.md" in path.read_text()
