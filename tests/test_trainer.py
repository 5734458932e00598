"""OARGRPOTrainer inside TRL: one real step per method, 'none' == plain GRPO, config validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import single_thread
from trl import GRPOConfig, GRPOTrainer

from oarl.batch.step import OARStep
from oarl.core.scorers import SCORERS
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer, config_settings
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.tasks import arith

COMMON = dict(
    use_cpu=True,
    bf16=False,
    report_to="none",
    max_steps=1,
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=32,
    logging_steps=1,
    learning_rate=1e-3,
    gradient_checkpointing=False,
    save_strategy="no",
    seed=0,
    disable_tqdm=True,
    temperature=1.0,
)


@pytest.fixture(scope="module")
def task():
    """Arith tokenizer, a briefly supervised tiny model (writes the task format), and prompts."""
    tok = tiny_model.build_tokenizer()
    torch.manual_seed(0)
    model = tiny_model.build_tiny_model(tok, hidden_size=64, num_layers=2, intermediate_size=128)
    probs = arith.generate_problems(256, arith.ArithConfig(seed=1))
    texts = [p.prompt + p.completion + tok.eos_token for p in probs]
    enc = tok(texts, padding=True, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    with single_thread():  # the same weights whatever the core count (see conftest.single_thread)
        for step in range(60):
            idx = torch.arange(32) + (step * 32) % 224
            ids, am = enc.input_ids[idx], enc.attention_mask[idx]
            labels = ids.masked_fill(am == 0, -100)
            loss = model(input_ids=ids, attention_mask=am, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    data = arith.make_dataset(16, arith.ArithConfig(seed=2))
    return tok, model.state_dict(), model.config, data


def varied_reward(completions, **kwargs):
    """A reward with spread even for a barely trained model (the arith reward is all zeros there)."""
    return [float(len(c) % 4) for c in completions]


def make_trainer(task, cls, args, reward=varied_reward):
    tok, state, config, data = task
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state)
    return cls(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok)


def test_none_equals_plain_grpo(task, tmp_path):
    out = {}
    for name, cls, cfg in [("grpo", GRPOTrainer, GRPOConfig), ("oar", OARGRPOTrainer, OARConfig)]:
        extra = {"oar_method": "none"} if cls is OARGRPOTrainer else {}
        args = cfg(output_dir=str(tmp_path / name), **COMMON, **extra)
        trainer = make_trainer(task, cls, args)
        trainer.train()
        logs = [h for h in trainer.state.log_history if "loss" in h][0]
        out[name] = (
            logs["loss"],
            logs["grad_norm"],
            [p.detach().clone() for p in trainer.model.parameters()],
        )
    # Bit-exact by construction: "none" runs GRPO's own code path on the same seed, data, weights and threads
    # in one process (advantages are only broadcast over tokens, and A * 1.0 == A).
    assert out["grpo"][0] == out["oar"][0] and out["grpo"][1] == out["oar"][1]
    assert out["grpo"][1] > 0
    for a, b in zip(out["grpo"][2], out["oar"][2], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["gradient", "perturbation", "entropy", "random"])
def test_one_step_per_method(task, tmp_path, method):
    args = OARConfig(output_dir=str(tmp_path), oar_method=method, **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args)
    seen = {}
    original = trainer._generate_and_score_completions

    def spy(inputs):
        out = original(inputs)
        seen["adv"] = out["advantages"]
        seen["T"] = out["completion_ids"].shape
        return out

    trainer._generate_and_score_completions = spy
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert seen["adv"].shape == seen["T"]
    assert torch.isfinite(seen["adv"]).all()
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert torch.isfinite(torch.tensor(logs["loss"]))
    assert any(
        not torch.equal(a, b.detach()) for a, b in zip(before, trainer.model.parameters(), strict=True)
    )
    for key in (
        "oar/ess_ratio",
        "oar/no_span_frac",
        "oar/scored_frac",
        "oar/scorer_seconds",
        "oar/weight_max",
    ):
        assert key in logs
    assert logs["oar/no_span_frac"] < 0.5  # the warm model writes "ANSWER n"
    assert logs["oar/scored_frac"] > 0
    assert abs(logs["oar/weight_mean"] - 1.0) < 1e-4  # mass is preserved


def test_zero_advantage_groups_are_not_scored(task, tmp_path):
    args = OARConfig(output_dir=str(tmp_path), oar_method="perturbation", **COMMON)
    trainer = make_trainer(
        task, OARGRPOTrainer, args, reward=lambda completions, **kw: [1.0] * len(completions)
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert logs["oar/zero_adv_skipped_frac"] == 1.0 and logs["oar/scored_frac"] == 0.0  # exact: n/n and 0/n


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"oar_method": "magic"}, "unknown OAR method"),
        ({"oar_probe": "as_max"}, "unknown probe"),
        ({"oar_tau": 1.0}, "tau"),
        ({"oar_beta": -0.5}, "beta"),
        ({"oar_floor": 2.0}, "floor"),
        ({"oar_noise_std": -1e-3}, "noise_std"),
        ({"oar_probe_warmup_steps": -1}, "warmup"),
        ({"oar_max_batch_tokens": 0}, "max_batch_tokens"),
        ({"importance_sampling_level": "sequence"}, r"GSPO.*\[B, 1\]"),
        ({"importance_sampling_level": "sequence", "loss_type": "luspo"}, "GSPO"),
        ({"loss_type": "gspo_2"}, "not checked with loss_type"),
    ],
)
def test_config_validation(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        OARConfig(output_dir=str(tmp_path), **kw)


def test_plain_grpo_accepts_every_trl_mode_and_oar_the_per_token_ones(tmp_path):
    for loss_type in ("grpo", "dapo", "luspo", "sapo", "cispo", "vespo"):
        kw = dict(output_dir=str(tmp_path), importance_sampling_level="sequence", loss_type=loss_type)
        OARConfig(oar_method="none", use_cpu=True, bf16=False, **kw)
    OARConfig(oar_method="gradient", use_cpu=True, bf16=False, **{**kw, "loss_type": "cispo"})


def test_probe_warmup_uses_lt_logits(tmp_path):
    args = OARConfig(
        output_dir=str(tmp_path), oar_probe="as_mean", oar_probe_warmup_steps=5, use_cpu=True, bf16=False
    )
    step = OARStep(config_settings(args, None))  # the step decides the settings in force at a step
    assert step.settings_at(0).probe == "lt_logits"
    assert step.settings_at(5).probe == "as_mean"


def test_nonfinite_scores_fall_back_to_grpo_and_are_counted(task, tmp_path, monkeypatch, caplog):

    def nan_scores(model, layout, **kw):
        return torch.full(layout.input_ids.shape, float("nan"))

    monkeypatch.setitem(SCORERS, "gradient", dataclasses.replace(SCORERS["gradient"], fn=nan_scores))
    args = OARConfig(output_dir=str(tmp_path), oar_method="gradient", **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args)
    seen = {}
    original = trainer._generate_and_score_completions

    def spy(inputs):
        out = original(inputs)
        seen["adv"] = out["advantages"]
        return out

    trainer._generate_and_score_completions = spy
    with caplog.at_level("WARNING", logger="oarl.integrations.trl.trainer"):
        trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert torch.isfinite(seen["adv"]).all() and torch.isfinite(torch.tensor(logs["loss"]))
    assert logs["oar/nonfinite_fallback"] > 0 and logs["oar/scored_frac"] == 0.0
    # Exact: a count, and the fallback's weights are written as ones.
    assert logs["oar/nonfinite_advantage"] == 0 and logs["oar/weight_max"] == 1.0
    assert "non-finite OAR scores" in caplog.text
