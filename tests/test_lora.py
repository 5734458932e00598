# ruff: noqa: F811  (the task fixture imported from test_trainer is redefined as a test argument)
"""LoRA (peft): every scorer scores the adapted policy, adapters train, the base stays frozen."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import layout, tiny_lm
from test_trainer import COMMON, make_trainer, task, varied_reward  # noqa: F401  (task is a fixture)

from oarl.core.scorers import get_scorer, shared_options
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer

peft = pytest.importorskip("peft", reason="peft is not installed (pip install -e '.[peft]')")

MODEL_SCORERS = ["perturbation", "gradient", "entropy", "perturbation_linear"]
ARGS = ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")


def lora(model, seed: int = 0):
    """The model wrapped with LoRA on q/v/up projections, B randomised so the adapters change the function."""
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], lora_dropout=0.0)
    wrapped = peft.get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)
    for name, p in wrapped.named_parameters():
        if "lora_B" in name:
            p.data = torch.randn(p.shape, generator=g) * 0.3
    return wrapped


@pytest.mark.parametrize("method", MODEL_SCORERS)
def test_scores_through_peft_model_equal_merged_model(method):
    """Scoring the PEFT-wrapped model = scoring the same function with the adapters merged into the weights
    (so OAR-G's gradient reaches the input embeddings through the adapter layers)."""
    wrapped = lora(tiny_lm("llama"))
    merged = copy.deepcopy(wrapped).merge_and_unload()
    ids, am, rm, ans = layout([(3, 10, 2), (2, 12, 1)])
    opts = shared_options(method, noise_std=0.1)
    s_peft = get_scorer(method)(wrapped, ids, am, rm, ans, generator=torch.Generator().manual_seed(1), **opts)
    s_merged = get_scorer(method)(
        merged, ids, am, rm, ans, generator=torch.Generator().manual_seed(1), **opts
    )
    assert s_peft[rm.bool()].abs().sum() > 0
    torch.testing.assert_close(s_peft, s_merged, rtol=1e-4, atol=1e-6)
    base = get_scorer(method)(
        tiny_lm("llama"), ids, am, rm, ans, generator=torch.Generator().manual_seed(1), **opts
    )
    assert not torch.allclose(s_peft, base, atol=1e-6)  # the adapters are really in the scored function


def test_gradient_scorer_leaves_frozen_and_adapter_grads_untouched():
    wrapped = lora(tiny_lm("llama"))
    modes = [m.training for m in wrapped.modules()]
    ids, am, rm, ans = layout([(3, 10, 2)])
    get_scorer("gradient")(wrapped, ids, am, rm, ans, noise_std=0.1)
    assert all(p.grad is None for p in wrapped.parameters())
    assert [m.training for m in wrapped.modules()] == modes


@pytest.mark.parametrize("method", ["gradient", "perturbation", "entropy", "random", "uniform", "oracle"])
def test_trainer_with_peft_config_trains_adapters_only(task, tmp_path, method):
    args = OARConfig(output_dir=str(tmp_path), oar_method=method, **COMMON)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    tok, state, config, data = task
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state)

    def labeler(tokenizer, prompt_ids, completion_ids, completion_mask):
        return completion_mask.bool() & (completion_ids % 2 == 0)

    extra = {"token_labeler": labeler} if method == "oracle" else {}
    trainer = OARGRPOTrainer(
        model=model, reward_funcs=varied_reward, args=args, train_dataset=data, processing_class=tok,
        peft_config=cfg, **extra,
    )  # fmt: skip
    assert isinstance(trainer.model, peft.PeftModel)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert logs["oar/scored_frac"] > 0  # the scorer ran on the adapter-wrapped policy
    assert logs["oar/nonfinite_fallback"] == 0
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)  # adapters moved, base weights did not
    assert any("lora_B" in n for n in changed)


def test_train_cli_lora_flags_parse_like_trl(monkeypatch, tmp_path, capsys):
    from oarl.cli import train

    seen = {}
    monkeypatch.setattr(train, "run", lambda task_args, config, lora_args: seen.update(lora=lora_args) or 0)
    base = ["--output_dir", str(tmp_path), "--use_cpu", "true"]
    argv = [*base, "--use-peft", "--lora-r", "4", "--lora_alpha", "8",
            "--lora-target-modules", "q_proj", "v_proj"]  # fmt: skip
    assert train.main(argv) == 0
    from oarl.integrations.trl.lora import lora_config

    cfg = lora_config(seen["lora"])
    assert isinstance(cfg, peft.LoraConfig) and cfg.r == 4 and cfg.lora_alpha == 8
    assert set(cfg.target_modules) == {"q_proj", "v_proj"}
    train.main(base)
    assert lora_config(seen["lora"]) is None  # no --use_peft: full fine-tuning as before
    assert train.main([*base, "--use_peft", "--lora_r", "0"]) == 2  # a usage error, named
    assert "lora_r must be a whole number" in capsys.readouterr().err


def test_train_cli_with_lora_saves_adapter_and_merged_model(tiny_math_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from oarl.cli import train

    out = tmp_path / "run"
    argv = ["--task", "gsm8k", "--model_path", str(tiny_math_model), "--max_rows", "8", "--output_dir", str(out),
            "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--max_steps", "1",
            "--per_device_train_batch_size", "16", "--num_generations", "4", "--max_completion_length", "24",
            "--save_strategy", "no", "--gradient_checkpointing", "false", "--disable_tqdm", "true",
            "--oar_method", "gradient", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
            "--lora_target_modules", "q_proj", "v_proj"]  # fmt: skip
    assert train.main(argv) == 0
    assert (out / "final" / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out / "final")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
