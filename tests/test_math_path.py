"""The math path end to end, offline: GSM8K rows -> prompt template -> generation -> math-verify reward ->
OAR-G weights -> update, on a tiny Qwen2 with a tokenizer trained locally (see ``tiny_math_model``)."""

from __future__ import annotations

import math

import torch

import oarl.batch.step
from oarl.cli.train import TaskArguments, build_trainer
from oarl.integrations.trl.trainer import OARConfig
from oarl.lab.math.prompts import DEFAULT_INSTRUCTION


def test_one_oar_g_step_on_eight_gsm8k_rows(tiny_math_model, tmp_path, monkeypatch):
    task = TaskArguments(task="gsm8k", model_path=str(tiny_math_model), split="train", max_rows=8,
                         format_reward_weight=0.5)  # fmt: skip
    config = OARConfig(
        output_dir=str(tmp_path / "run"), oar_method="gradient", oar_probe="as_mean",
        oar_probe_warmup_steps=0, use_cpu=True, bf16=False, report_to="none", max_steps=1,
        per_device_train_batch_size=32, num_generations=4, max_completion_length=32, temperature=1.0,
        learning_rate=1e-3, logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True,
        gradient_checkpointing=False,
    )  # fmt: skip
    trainer, held_out = build_trainer(task, config)
    assert held_out is None and len(trainer.train_dataset) == 8

    calls: list[dict] = []
    reward = trainer.reward_funcs[0]
    assert reward.__name__ == "math_verify_reward"

    def spy_reward(prompts=None, completions=None, **kwargs):
        out = reward(prompts=prompts, completions=completions, **kwargs)
        calls.append({"prompts": prompts, "completions": completions, "answer": kwargs["answer"], "out": out})
        return out

    spy_reward.__name__ = reward.__name__
    trainer.reward_funcs[0] = spy_reward
    results = []
    real_oar = oarl.batch.step.oar_token_advantages

    def spy_oar(*args, **kwargs):
        res = real_oar(*args, **kwargs)
        results.append((args, res))
        return res

    monkeypatch.setattr(oarl.batch.step, "oar_token_advantages", spy_oar)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()

    # Template: chat messages with the \boxed{} instruction; references are the GSM8K final answers.
    (call,) = calls
    gsm8k_answers = set(trainer.train_dataset["answer"])
    assert len(call["completions"]) == 32 and set(call["answer"]) == gsm8k_answers
    assert all(DEFAULT_INSTRUCTION in p[-1]["content"] for p in call["prompts"])
    # Reward: 1 per correct answer + 0.5 per answer span; the fitted model writes '####' often, not always.
    assert set(call["out"]) <= {0.0, 0.5, 1.5} and len(set(call["out"])) > 1
    # OAR weights: rows with an answer span and a non-zero advantage were scored, and their weights vary.
    ((args, res),) = results
    completion_mask, seq_adv = args[2].completion_mask.bool(), args[2].advantages
    assert res.advantages.shape == completion_mask.shape and res.scored.any()
    scored_weights = res.weights[res.scored][completion_mask[res.scored]]
    assert scored_weights.std() > 0 and scored_weights.max() > 1
    for row in range(len(seq_adv)):  # sum_t w_t = T per scored row: the mass of A is kept
        n_tok = completion_mask[row].sum()
        total = res.advantages[row][completion_mask[row]].sum()
        assert torch.allclose(total, seq_adv[row] * n_tok, atol=1e-4 * max(1.0, float(n_tok)))
    # Update: finite loss, parameters moved.
    logs = next(h for h in trainer.state.log_history if "loss" in h)
    assert math.isfinite(logs["loss"]) and logs["oar/scored_frac"] > 0
    after = list(trainer.model.parameters())
    assert any(not torch.equal(b, a.detach()) for b, a in zip(before, after, strict=True))
    assert all(torch.isfinite(a).all() for a in after)
