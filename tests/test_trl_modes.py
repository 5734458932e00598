"""The guard against a TRL mode in which OAR silently does nothing.

For every TRL ``loss_type`` (read from ``GRPOConfig``'s own help, so a new one is checked the day TRL adds it)
and both importance-sampling levels, TRL's ``_compute_loss`` differentiates one fixed batch twice: with GRPO's
``[B]`` advantages and with OAR's ``A * w_t`` (non-uniform weights of mean 1 over the trained tokens). OAR must
be accepted exactly where the two gradients differ, and refused (at config time) where they do not.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from conftest import single_thread
from trl import GRPOConfig

from oarl.integrations.trl.modes import SEQUENCE_RATIO_LOSSES, check_loss_mode
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.tasks import arith

_HELP = next(f for f in dataclasses.fields(GRPOConfig) if f.name == "loss_type").metadata["help"]
LOSS_TYPES = re.findall(r"'(\w+)'", re.search(r"Supported values are (.*?)\.", _HELP).group(1))
LEVELS = ("token", "sequence")
#: Settings that must keep OAR effective (token level); each is a trainer attribute and extra batch inputs.
EXTRAS = {
    "plain": {},
    "kl": {"beta": 0.04},
    "entropy_mask": {"top_entropy_quantile": 0.5},
    "vllm_is": {"use_vllm": True, "vllm_importance_sampling_correction": True},
    "off_policy_mask": {"off_policy_mask_threshold": 0.5},
}
ACTS, NO_OP = 1e-2, 1e-4  # relative gradient difference: OAR acts above ACTS; a no-op is below NO_OP


def test_trl_lists_the_loss_types_oarl_checked():
    assert len(LOSS_TYPES) == 8 and "grpo" in LOSS_TYPES and "vespo" in LOSS_TYPES


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A GRPO trainer on a tiny random model (never trained: only TRL's loss is used) and one fixed batch with
    padding, tool tokens (``tool_mask`` 0), off-policy old log-probs and OAR-style weights."""
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(tok, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    args = OARConfig(
        output_dir=str(tmp_path_factory.mktemp("modes")),
        oar_method="none",
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        gradient_checkpointing=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    data = arith.make_dataset(4, arith.ArithConfig(seed=2))
    trainer = OARGRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=data,
        processing_class=tok,
    )
    trainer.current_gradient_accumulation_steps = 1
    g = torch.Generator().manual_seed(0)
    B, P, T = 4, 5, 8
    prompt_ids = torch.randint(5, len(tok), (B, P), generator=g)
    completion_ids = torch.randint(5, len(tok), (B, T), generator=g)
    completion_mask = torch.ones(B, T, dtype=torch.long)
    completion_mask[1, 6:] = 0
    completion_mask[3, 5:] = 0
    tool_mask = torch.ones(B, T, dtype=torch.long)
    tool_mask[0, 2:4] = 0
    tool_mask[2, 5] = 0
    trained = (completion_mask * tool_mask).bool()
    ids = torch.cat([prompt_ids, completion_ids], 1)
    attn = torch.cat([torch.ones(B, P, dtype=torch.long), completion_mask], 1)
    with torch.no_grad(), single_thread():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, attn, T)
    batch = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "tool_mask": tool_mask,
        "num_items_in_batch": trained.sum(),
        # As after an earlier update (num_iterations > 1): ratios within TRL's clip range, not all 1.
        "old_per_token_logps": logps + 0.05 * torch.randn(B, T, generator=g),
        "ref_per_token_logps": logps + 0.1 * torch.randn(B, T, generator=g),
        "sampling_per_token_logps": logps + 0.05 * torch.randn(B, T, generator=g),
        "importance_sampling_ratio": torch.exp(0.1 * torch.randn(B, T, generator=g)),
    }
    seq_adv = torch.tensor([1.0, -0.5, 0.8, -1.2])
    raw = torch.rand(B, T, generator=g) * 1.6 + 0.2  # OAR's weights: positive, mean 1 over the trained tokens
    w = torch.where(trained, raw * trained.sum(-1, keepdim=True) / (raw * trained).sum(-1, keepdim=True), 1.0)
    torch.testing.assert_close((w * trained).sum(-1), trained.sum(-1).float())
    trainer.model.train()
    return trainer, batch, seq_adv, w


def grad(trainer, batch: dict, advantages: torch.Tensor) -> torch.Tensor:
    trainer.model.zero_grad()
    with single_thread():
        trainer._compute_loss(trainer.model, {**batch, "advantages": advantages}).backward()
    return torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])


def relative_difference(setup, loss_type: str, level: str, extra: dict) -> float:
    trainer, batch, seq_adv, w = setup
    changed = {"loss_type": loss_type, "importance_sampling_level": level, **extra}
    saved = {k: getattr(trainer, k) for k in changed}
    for k, v in changed.items():
        setattr(trainer, k, v)
    try:
        g_grpo = grad(trainer, batch, seq_adv)
        g_oar = grad(trainer, batch, seq_adv[:, None] * w)
    finally:
        for k, v in saved.items():
            setattr(trainer, k, v)
    assert g_grpo.norm() > 0
    return ((g_oar - g_grpo).norm() / g_grpo.norm()).item()


def accepted(loss_type: str, level: str, method: str = "gradient") -> bool:
    """Whether OARConfig accepts the mode (it calls check_loss_mode first; test_trainer.py checks it does, since
    a full OARConfig here would reset the accelerator state the module's trainer holds)."""
    try:
        check_loss_mode(method, loss_type, level)
    except ValueError as e:
        assert "oar_method='none'" in str(e)  # the message names what to use
        return False
    return True


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_oar_is_accepted_exactly_where_it_changes_trls_update(setup, loss_type, level):
    rel = relative_difference(setup, loss_type, level, {})
    if accepted(loss_type, level):
        assert rel > ACTS, (
            f"OAR is accepted with {loss_type}/{level} but changes the gradient by only {rel:.2e}"
        )
    else:
        assert rel < NO_OP, (
            f"OAR is refused with {loss_type}/{level}, where it changes the gradient by {rel:.2e}"
        )
    assert accepted(loss_type, level, method="none")  # plain GRPO accepts every TRL mode


@pytest.mark.parametrize("extra", [k for k in EXTRAS if k != "plain"])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_trls_other_settings_keep_oar_effective(setup, loss_type, extra):
    assert relative_difference(setup, loss_type, "token", EXTRAS[extra]) > ACTS


def test_the_refusal_says_why_and_what_to_use():
    for loss_type in SEQUENCE_RATIO_LOSSES:
        with pytest.raises(ValueError, match=r"\[B, 1\].*mean_t\(A_t\).*importance_sampling_level='token'"):
            check_loss_mode("gradient", loss_type, "sequence")
    with pytest.raises(ValueError, match="not checked with loss_type='gspo_2'"):
        check_loss_mode("perturbation", "gspo_2", "token")
    check_loss_mode("gradient", "cispo", "sequence")  # cispo and vespo weight A_t * log pi(y_t) per token
