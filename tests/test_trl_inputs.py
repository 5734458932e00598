"""What TRL puts in the batch beyond text completions: tool / environment tokens (``tool_mask``, from a
``rollout_func``'s ``env_mask`` or the tool-calling loop) and vision inputs."""

from __future__ import annotations

import pytest
import torch
from trl import GRPOTrainer

import oarl.batch.step as step_module
from oarl.integrations.trl.modes import check_batch_images, check_vision
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.tasks import arith

COMMON = dict(
    use_cpu=True,
    bf16=False,
    report_to="none",
    max_steps=1,
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=64,
    logging_steps=1,
    gradient_checkpointing=False,
    save_strategy="no",
    seed=0,
    disable_tqdm=True,
)


def env_rollout(tok):
    """A ``rollout_func`` whose completions hold environment output (``env_mask`` 0): the 3rd-5th tokens of
    every completion, and in generation 3 of each prompt also the answer (the environment said it)."""
    problems = arith.generate_problems(4, arith.ArithConfig(seed=3))
    completions = [tok(p.completion, add_special_tokens=False).input_ids for p in problems]

    def rollout(prompts, trainer):
        prompt_ids = [tok(p, add_special_tokens=False).input_ids for p in prompts]
        completion_ids = [completions[i % 4] for i in range(len(prompts))]
        env_mask = []
        for i, ids in enumerate(completion_ids):
            mask = [1] * len(ids)
            mask[2:5] = [0, 0, 0]
            if i % 4 == 3:
                mask[-1] = 0
            env_mask.append(mask)
        logprobs = [[0.0] * len(ids) for ids in completion_ids]
        gen = [i % 4 for i in range(len(prompts))]
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completion_ids,
            "logprobs": logprobs,
            "env_mask": env_mask,
            "gen": gen,
        }

    return rollout


def by_generation(completions, gen, **kwargs):
    return [float(g) for g in gen]


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(tok, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    return tok, model, arith.make_dataset(8, arith.ArithConfig(seed=2))


def test_env_mask_tokens_are_never_scored_nor_the_answer_and_weights_keep_the_trained_mass(
    tiny, tmp_path, monkeypatch
):
    tok, model, data = tiny
    seen = {}
    real = step_module.oar_token_advantages

    def spy(*args, **kwargs):
        res = real(*args, **kwargs)
        seen.update(completion_mask=args[2].completion_mask, loss_mask=args[2].loss_mask, res=res)
        return res

    monkeypatch.setattr(step_module, "oar_token_advantages", spy)
    args = OARConfig(output_dir=str(tmp_path), oar_method="gradient", **COMMON)
    trainer = OARGRPOTrainer(
        model=model,
        reward_funcs=by_generation,
        args=args,
        train_dataset=data,
        processing_class=tok,
        rollout_func=env_rollout(tok),
    )
    trainer.train()
    res, cmask, env = seen["res"], seen["completion_mask"].bool(), seen["loss_mask"]
    assert env is not None and not env.bool()[cmask].all()  # TRL's tool_mask reached the hook
    trained = cmask & env.bool()
    gen = torch.arange(len(cmask)) % 4
    # The answer in environment output is not the policy's: no span, uniform weights (GRPO's row).
    assert res.no_span[gen == 3].all() and not res.scored[gen == 3].any()
    assert (res.weights[gen == 3] == 1).all()
    assert res.scored[gen != 3].all()
    w = res.weights
    assert (w[~env.bool() & cmask] == 1).all()  # environment tokens: never scored
    assert (w[trained] != 1).any()
    torch.testing.assert_close((w * trained).sum(-1), trained.sum(-1).float())  # mass over trained tokens
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert logs["oar/weight_mean"] == pytest.approx(1.0, abs=1e-5)


def test_vision_inputs_are_refused_by_name(tiny, tmp_path, monkeypatch):
    check_vision("none", True, model_free=True)  # plain GRPO never runs the model (its spec: uniform)
    check_vision("random", True, model_free=True)  # never runs the model: nothing to be blind to
    with pytest.raises(ValueError, match="vision-language.*multimodal processor.*oar_method='none'"):
        check_vision("gradient", True, model_free=False)
    tok, model, data = tiny
    args = OARConfig(output_dir=str(tmp_path), oar_method="gradient", **COMMON)
    trainer = OARGRPOTrainer(
        model=model, reward_funcs=by_generation, args=args, train_dataset=data, processing_class=tok
    )
    batch = {"advantages": torch.ones(2), "pixel_values": torch.zeros(2, 3, 4, 4), "image_grid_thw": None}
    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", lambda self, inputs: dict(batch))
    trainer.model.train()
    with pytest.raises(ValueError, match=r"vision-language.*pixel_values\)"):
        trainer._generate_and_score_completions([])
    check_batch_images("none", batch, model_free=True)


def test_a_generation_scorer_refuses_rollouts_it_cannot_reproduce():
    from oarl.integrations.trl.modes import check_generation_rollouts

    check_generation_rollouts("resample", [], None, None)
    for tools, envs, rollout in (
        ([by_generation], None, None),
        ([], {None: object}, None),
        ([], None, env_rollout),
    ):
        with pytest.raises(ValueError, match="cannot reproduce TRL's"):
            check_generation_rollouts("resample", tools, envs, rollout)
