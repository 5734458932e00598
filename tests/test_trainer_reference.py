"""``OARGRPOTrainer(oar_reference_model=...)``: PRIME's reference model without TRL's ``ref_model`` (beta 0, or
PEFT), read by the step; a second model given to a method that does not read it is refused by name."""

from __future__ import annotations

import pytest
import torch
from test_trainer import COMMON, make_trainer, task, varied_reward  # noqa: F401  (task is a fixture)

from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer


def _model(config, state):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state)
    return model


def test_prime_trains_with_a_given_reference_model_at_beta_zero(task, tmp_path):  # noqa: F811
    tok, state, config, data = task
    args = OARConfig(output_dir=str(tmp_path), oar_method="prime", **COMMON)
    assert args.beta == 0  # TRL keeps no ref_model: the given one is the only reference
    reference = _model(config, state)
    torch.manual_seed(1)
    for p in reference.parameters():  # a different model, so the implicit reward is not 0
        p.data.add_(0.05 * torch.randn_like(p))
    trainer = OARGRPOTrainer(
        model=_model(config, state), reward_funcs=varied_reward, args=args, train_dataset=data,
        processing_class=tok, oar_reference_model=reference,
    )  # fmt: skip
    assert trainer._oar_step.reference_model is reference
    assert not any(p.requires_grad for p in reference.parameters())  # frozen by the trainer
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert torch.isfinite(torch.tensor(logs["loss"]))
    assert logs["oar/scored_frac"] > 0 and logs["oar/nonfinite_fallback"] == 0


@pytest.mark.parametrize(
    ("method", "kwarg"), [("entropy", "oar_reference_model"), ("prime", "oar_contrast_models")]
)
def test_a_second_model_the_method_does_not_read_is_refused(task, tmp_path, method, kwarg):  # noqa: F811
    tok, state, config, data = task
    args = OARConfig(output_dir=str(tmp_path), oar_method=method, **COMMON)
    given = _model(config, state) if kwarg == "oar_reference_model" else (_model(config, state),) * 2
    with pytest.raises(ValueError, match=f"{kwarg}= given, but oar_method={method!r} does not read"):
        OARGRPOTrainer(
            model=_model(config, state), reward_funcs=varied_reward, args=args, train_dataset=data,
            processing_class=tok, **{kwarg: given},
        )  # fmt: skip


def test_run_arm_gives_prime_a_frozen_copy_of_the_warm_start_and_no_other_arm_a_reference():
    from conftest import tiny_lm

    from oarl.lab.testbed.experiment import reference_for

    model = tiny_lm()
    given = reference_for("prime", model)["oar_reference_model"]
    assert given is not model and not any(p.requires_grad for p in given.parameters())
    assert all(
        torch.equal(a, b)
        for a, b in zip(given.state_dict().values(), model.state_dict().values(), strict=True)
    )
    assert any(p.requires_grad for p in model.parameters())  # the policy itself still trains
    assert reference_for("entropy", model) == {} and reference_for("cdpo", model) == {}
