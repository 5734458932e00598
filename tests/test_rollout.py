"""The step's batch (``Rollout``: shapes checked at construction) and settings written once (a new OARSettings
knob is one edit: it appears in OARConfig, in RLSettings' overrides and in the settings the trainer's step uses)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oarl.batch.rollout import Rollout

B, P, T = 4, 3, 5


def tensors() -> dict[str, torch.Tensor]:
    return {
        "prompt_ids": torch.ones(B, P, dtype=torch.long),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": torch.ones(B, T, dtype=torch.long),
        "completion_mask": torch.ones(B, T, dtype=torch.long),
        "advantages": torch.zeros(B),
    }


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("prompt_mask", (B, P + 1)),
        ("completion_ids", (B + 1, T)),
        ("completion_mask", (B, T - 1)),
        ("advantages", (B, 1)),
        ("rewards", (B - 1,)),
        ("group_ids", (2 * B,)),
        ("loss_mask", (B, P)),
        ("oracle_labels", (T, B)),
    ],
)
def test_a_mismatched_shape_fails_at_construction_naming_the_field(name, shape):
    given = {**tensors(), name: torch.zeros(shape)}
    with pytest.raises(ValueError, match=rf"Rollout\.{name} has shape"):
        Rollout(**given)


def test_groups_from_num_generations_or_given_and_the_trained_tokens():
    r = Rollout(**tensors(), num_generations=2)
    assert r.groups.tolist() == [0, 0, 1, 1]
    assert Rollout(**tensors()).groups is None
    ids = torch.tensor([3, 3, 1, 1])
    assert torch.equal(Rollout(**tensors(), group_ids=ids).groups, ids)
    with pytest.raises(ValueError, match="not both"):
        Rollout(**tensors(), group_ids=ids, num_generations=2)
    with pytest.raises(ValueError, match="groups of 3"):
        Rollout(**tensors(), num_generations=3)
    with pytest.raises(ValueError, match="2-D|must be \\[B, P\\]"):
        Rollout(**{**tensors(), "prompt_ids": torch.ones(P, dtype=torch.long)})
    loss = torch.ones(B, T, dtype=torch.long)
    loss[0, :2] = 0
    trained = Rollout(**tensors(), loss_mask=loss).trained
    assert trained.dtype == torch.bool and trained.sum().item() == B * T - 2


SRC = Path(__file__).resolve().parents[1] / "src" / "oarl"
#: The one edit: a field (with its help text) in OARSettings, just before ``span_finders``.
FIELD = '    probe_temperature: float = _knob(1.0, "a new knob (test)")\n'
CHECK = """
import dataclasses, sys
from transformers import HfArgumentParser
from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer, config_fields
from oarl.lab.testbed.settings import RUN_FIELDS, RLSettings, with_overrides
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.tasks import arith

field = {f.name: f for f in dataclasses.fields(OARConfig)}["oar_probe_temperature"]
assert field.default == 1.0 and field.metadata["help"] == "a new knob (test)"
rl = with_overrides(RLSettings(), {"probe_temperature": 0.5})  # an override by its name
assert rl.oar.probe_temperature == 0.5 and "oar_probe_temperature" in RUN_FIELDS
common = dict(output_dir=sys.argv[1], use_cpu=True, report_to="none", per_device_train_batch_size=2,
              num_generations=2, max_completion_length=8)
args = OARConfig(**common, **config_fields(rl.arm_settings("gradient")))  # as run_arm builds it
tok = tiny_model.build_tokenizer()
model = tiny_model.build_tiny_model(tok, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
trainer = OARGRPOTrainer(model=model, reward_funcs=arith.arith_reward, args=args,
                         train_dataset=arith.make_dataset(4), processing_class=tok)
assert trainer._oar_step.settings.probe_temperature == 0.5
assert trainer._oar_step.settings_at(0).probe_temperature == 0.5
(parsed,) = HfArgumentParser(OARConfig).parse_args_into_dataclasses(
    ["--output_dir", sys.argv[1], "--use_cpu", "true", "--oar_probe_temperature", "0.25"])
assert parsed.oar_probe_temperature == 0.25
print("one edit: OK")
"""


def test_a_new_settings_field_is_one_edit(tmp_path):
    """A copy of the package with one more OARSettings field, and nothing else edited: OARConfig has
    ``oar_probe_temperature`` (its default and help), an RLSettings override by name reaches the config run_arm
    builds and the settings of the trainer's step, and the CLI parser takes the flag."""
    copy = tmp_path / "src" / "oarl"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "checkpoints"))
    settings = copy / "batch" / "settings.py"
    text = settings.read_text(encoding="utf-8")
    anchor = "    span_finders: list[str] | None = _knob("
    assert text.count(anchor) == 1
    settings.write_text(text.replace(anchor, FIELD + anchor), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy.parent)}
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "one edit: OK" in out.stdout


def test_every_settings_field_is_an_oar_config_field_with_its_default():
    from oarl.batch.settings import OARSettings, config_name
    from oarl.integrations.trl.trainer import OARConfig

    config = {f.name: f for f in dataclasses.fields(OARConfig)}
    for f in dataclasses.fields(OARSettings):
        assert config[config_name(f.name)].default == f.default, f.name
