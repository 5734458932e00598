"""OARStep, the trainer-independent OAR step: the same [B, T] advantages as OARGRPOTrainer on the same batch,
its generator state round-trips, the probe warm-up, the zero-advantage skip and its metrics."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from conftest import single_thread
from test_trainer import COMMON, make_trainer, task  # noqa: F401  (task is a fixture)
from trl import GRPOTrainer

from oarl.batch.rollout import Rollout
from oarl.batch.settings import OARSettings
from oarl.batch.step import OARStep
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer, config_settings

KEYS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages")


def train_and_capture(trainer: OARGRPOTrainer, monkeypatch) -> dict:
    """Train ``trainer`` and keep its (one) step's TRL batch before OAR (``batch``: :data:`KEYS`), the rewards
    and a copy of the model it is scored with (``rewards``, ``model``), and the advantages OAR hands TRL's loss
    (``trainer_adv``)."""
    seen = {}
    grpo_step = GRPOTrainer._generate_and_score_completions

    def before_oar(self, inputs):  # TRL's batch, before OAR reshapes it, and the weights it is scored with
        out = grpo_step(self, inputs)
        seen["batch"] = {k: out[k].clone() for k in KEYS}
        seen["rewards"] = self._oar_rewards_per_func[:, 0].clone()  # one reward function, weight 1
        seen["model"] = copy.deepcopy(self.accelerator.unwrap_model(self.model))
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", before_oar)
    oar_step = trainer._generate_and_score_completions

    def after_oar(inputs):
        out = oar_step(inputs)
        seen["trainer_adv"] = out["advantages"].clone()
        return out

    trainer._generate_and_score_completions = after_oar
    with single_thread():
        trainer.train()
    return seen


@pytest.mark.parametrize("method", ["gradient", "perturbation"])
def test_step_equals_trainer_on_the_same_batch(task, tmp_path, monkeypatch, method):  # noqa: F811
    """What OARGRPOTrainer hands TRL's loss is what OARStep returns for TRL's batch and weights."""
    args = OARConfig(output_dir=str(tmp_path), oar_method=method, oar_noise_std=0.1, **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args)
    seen = train_and_capture(trainer, monkeypatch)
    step = OARStep(config_settings(args, trainer._oar_mask_token_id), seed=args.seed)
    b = seen["batch"]
    with single_thread():
        adv, metrics = step(seen["model"], trainer._tokenizer, Rollout(*(b[k] for k in KEYS)))
    assert adv.shape == b["completion_ids"].shape
    torch.testing.assert_close(adv, seen["trainer_adv"], rtol=1e-5, atol=1e-6)
    assert metrics["oar/scored_frac"] > 0
    assert abs(metrics["oar/weight_mean"] - 1.0) < 1e-4  # Σ w_t = T over the completion tokens


def _batch(task):  # noqa: F811
    tok, state, config, data = task
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state)
    model.eval()
    prompts = [data[i]["prompt"] for i in range(4)]
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = model.generate(**enc, do_sample=True, max_new_tokens=24, pad_token_id=tok.pad_token_id)
    comp = out[:, enc.input_ids.shape[1] :]
    cmask = torch.ones_like(comp)
    adv = torch.tensor([1.0, -1.0, 0.0, 0.5])
    return model, tok, Rollout(enc.input_ids, enc.attention_mask, comp, cmask, adv)


def test_generator_state_round_trips(task):  # noqa: F811
    model, tok, batch = _batch(task)
    first = OARStep(OARSettings(method="random"), seed=3)
    first(model, tok, batch)
    state = first.state_dict()
    a, _ = first(model, tok, batch)
    resumed = OARStep(OARSettings(method="random"), seed=99)
    resumed.load_state_dict(state)
    b, _ = resumed(model, tok, batch)
    assert torch.equal(a, b)  # bit-identical: the same generator state draws the same random scores
    assert resumed.calls == 2


def test_zero_advantage_rows_are_skipped_and_counted(task):  # noqa: F811
    model, tok, batch = _batch(task)
    adv, metrics = OARStep(OARSettings(method="random"))(model, tok, batch)
    assert metrics["oar/zero_adv_skipped_frac"] == 0.25  # exact: 1 row of 4
    assert metrics["oar/zero_adv_scored"] == 0.0  # exact: a count of rows
    assert torch.all(adv[2] == 0)


def test_probe_warmup_and_refusals():
    step = OARStep(OARSettings(method="gradient", probe_warmup_steps=2))
    assert step.settings_at(0).probe == "lt_logits" and step.settings_at(2).probe == "as_mean"
    with pytest.raises(ValueError, match="token_labeler"):
        OARStep(OARSettings(method="oracle"))
    with pytest.raises(ValueError, match="probe_warmup_steps"):
        OARSettings(method="gradient", probe_warmup_steps=-1)


def test_group_ids_from_num_generations(task):  # noqa: F811
    model, tok, batch = _batch(task)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    grouped = dataclasses.replace(batch, rewards=rewards, num_generations=2)
    assert grouped.groups.tolist() == [0, 0, 1, 1]
    adv, _ = OARStep(OARSettings(method="tree"))(model, tok, grouped)
    assert torch.isfinite(adv).all()
    with pytest.raises(ValueError, match="groups of 3"):
        dataclasses.replace(batch, rewards=rewards, num_generations=3)


def test_trainer_checkpoints_the_steps_generator(task, tmp_path):  # noqa: F811
    """The trainer's checkpoint file holds OARStep.state_dict(); one written before OARStep (the generator's
    state tensor alone) still loads."""
    args = OARConfig(output_dir=str(tmp_path), oar_method="random", **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args)
    old = torch.Generator().manual_seed(5)
    torch.save(old.get_state(), tmp_path / "oar_rng_state_0.pth")
    trainer._load_rng_state(str(tmp_path))
    assert torch.equal(trainer._oar_step.generator.get_state(), old.get_state())
    trainer._oar_step.calls = 3
    (tmp_path / "new").mkdir()
    trainer._save_rng_state(str(tmp_path / "new"))
    saved = torch.load(tmp_path / "new" / "oar_rng_state_0.pth", weights_only=True)
    assert saved["calls"] == 3 and torch.equal(saved["generator"], old.get_state())
    fresh = make_trainer(task, OARGRPOTrainer, args)
    fresh._load_rng_state(str(tmp_path / "new"))
    assert fresh._oar_step.calls == 3
    assert torch.equal(fresh._oar_step.generator.get_state(), old.get_state())
