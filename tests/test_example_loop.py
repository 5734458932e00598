"""examples/grpo_oar.py, GRPO without TRL's trainer: on TRL's own batch it gives the [B, T] advantages
OARGRPOTrainer hands TRL's loss (OARStep is all a second integration needs), its clipped loss clips, and a
short run on the shipped flag warm start learns."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from conftest import single_thread
from test_oar_step import train_and_capture
from test_trainer import COMMON, make_trainer, task  # noqa: F401  (task is a fixture)

from oarl.batch.rollout import Rollout
from oarl.batch.step import OARStep
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer, config_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "grpo_oar.py"


@pytest.fixture(scope="module")
def loop():
    """The example as a module (``examples/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("grpo_oar", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["grpo_oar"] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["grpo_oar"]


@pytest.mark.parametrize("method", ["gradient", "tree"])
def test_the_loop_gives_the_trainers_advantages_on_its_batch(loop, task, tmp_path, monkeypatch, method):  # noqa: F811
    """TRL's batch and rewards through the loop's group normalisation and OARStep equal the trainer's output
    (OAR-G with noise: the same generator seeding; ``tree``: the same groups and rewards)."""
    args = OARConfig(output_dir=str(tmp_path), oar_method=method, oar_noise_std=0.1, **COMMON)
    trainer = make_trainer(task, OARGRPOTrainer, args)
    seen = train_and_capture(trainer, monkeypatch)
    b, tok, G = seen["batch"], trainer._tokenizer, args.num_generations
    assert torch.equal(
        loop.completion_mask(b["completion_ids"], tok.eos_token_id), b["completion_mask"].int()
    )
    torch.testing.assert_close(loop.group_advantages(seen["rewards"], G), b["advantages"])
    batch = Rollout(
        b["prompt_ids"],
        b["prompt_mask"],
        b["completion_ids"],
        b["completion_mask"],
        loop.group_advantages(seen["rewards"], G),
        rewards=seen["rewards"],
        num_generations=G,
    )  # as the loop's rollout() builds it
    step = OARStep(config_settings(args, trainer._oar_mask_token_id), seed=args.seed)
    with single_thread():
        adv, metrics = step(seen["model"], tok, batch)
    assert adv.shape == b["completion_ids"].shape
    torch.testing.assert_close(adv, seen["trainer_adv"], rtol=1e-5, atol=1e-6)
    assert metrics["oar/scored_frac"] > 0


def test_the_clipped_loss(loop):
    """At ratio 1 the loss's gradient is -A_t / N on the trained tokens; outside [1 - ε, 1 + ε] on the side
    the advantage pushes towards, the token's gradient is zero."""
    adv = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    old = torch.zeros(1, 4)
    logps = torch.zeros(1, 4, requires_grad=True)
    loop.compute_loss(logps, old, adv, mask).backward()
    torch.testing.assert_close(logps.grad, -(adv * mask) / 3)
    moved = torch.tensor([[0.5, -0.5, -0.5, 0.0]], requires_grad=True)  # ratios e^0.5 > 1.2, e^-0.5 < 0.8
    loop.compute_loss(moved, old, adv, mask, clip_eps=0.2).backward()
    assert moved.grad[0, 0] == 0 and moved.grad[0, 1] == 0  # exact: clipped, no gradient
    assert moved.grad[0, 2] < 0  # A > 0 with a ratio below 1 - ε: still pushed up
    assert moved.grad[0, 3] == 0  # exact: masked


def test_a_short_run_learns(loop):
    """24 steps of OAR-G at the flag recipe's learning rate raise held-out sampled accuracy (256 problems, one
    sample each, fixed seed: 0.68 before, 0.84 after 20 steps and 0.89 after 30 when written; the warm start
    follows the flag about 65% of the time) and the batches' reward."""
    args = loop.parse_args(["--steps", "24", "--eval-every", "24", "--eval-problems", "256", "--quiet"])
    with single_thread():
        history = loop.train(args)
    first, last = history[0]["accuracy"], history[-1]["accuracy"]
    assert last >= first + 0.1, (first, last)
    rewards = [r["reward"] for r in history[1:]]
    assert sum(rewards[-5:]) > sum(rewards[:5]), rewards
