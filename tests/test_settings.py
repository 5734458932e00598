"""Settings written once: OARConfig's ``oar_*`` fields are OARSettings' (and OARStep's) field for field and
default for default; RLSettings holds an OARSettings, round-trips through YAML / JSON, and takes overrides by
name (``steps``, ``oar.tau`` or ``tau``) with a loud error on any other; the demo has no sentinels."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, fields

import pytest
import yaml

from oarl.batch.settings import OARSettings
from oarl.integrations.trl.trainer import OARConfig, config_settings
from oarl.lab.testbed.settings import OAR_KEYS, RLSettings, canonical_key, with_overrides

CPU = dict(use_cpu=True, bf16=False, report_to="none")
#: OARSettings fields whose OARConfig field differs in name or type: the trainer resolves the id from a token.
RENAMED = {"mask_token_id": "oar_mask_token"}
#: A value other than the default for every OARSettings field, valid together.
OTHER = dict(
    method="perturbation",
    probe="lt_logits",
    probe_warmup_steps=3,
    skip_zero_advantage=False,
    tau=0.2,
    beta=1.5,
    floor=0.25,
    noise_std=0.01,
    max_batch_tokens=64,
    span_finders=["task_marker"],
    scorer_options={"upcast": True},
    no_span_warn_frac=0.8,
    no_span_window=3,
    no_span_error=True,
)


def _oar_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(cls) if f.name.startswith("oar_")}


def test_oar_config_fields_are_the_settings_field_for_field_and_default_for_default():
    config = _oar_fields(OARConfig)
    expected = {RENAMED.get(f.name, f"oar_{f.name}"): f for f in fields(OARSettings)}
    assert set(config) == set(expected)
    for name, f in expected.items():
        assert config[name].default == f.default, name
        if f.name not in RENAMED:  # help written once, next to the OARSettings field
            assert config[name].metadata.get("help") == f.metadata.get("help"), name


def test_every_oar_setting_reaches_the_settings_the_trainer_builds(tmp_path):
    given = {f"oar_{k}": v for k, v in OTHER.items()}
    settings = config_settings(OARConfig(output_dir=str(tmp_path), **CPU, **given), mask_token_id=7)
    assert settings == OARSettings(**OTHER, mask_token_id=7)
    assert set(OTHER) | {"mask_token_id"} == {f.name for f in fields(OARSettings)}  # OTHER covers every field


def test_span_finders_are_checked_at_config_time(tmp_path):
    with pytest.raises(ValueError, match="span_finders"):
        OARSettings(span_finders=["nope"])
    with pytest.raises(ValueError, match="span_finders"):
        OARConfig(output_dir=str(tmp_path), **CPU, oar_span_finders=["nope"])
    assert with_overrides(RLSettings(), {"oar.span_finders": ["boxed"]}).oar.span_finders == ["boxed"]


@pytest.mark.parametrize("dump, load", [(yaml.safe_dump, yaml.safe_load), (json.dumps, json.loads)])
def test_rl_settings_round_trip_through_yaml_and_json(dump, load):
    rl = with_overrides(
        RLSettings(), {"tau": 0.2, "oar.noise_std": 0.1, "span_finders": ["boxed"], "steps": 3}
    )
    text = dump(asdict(rl))
    back = RLSettings(**load(text))
    assert back == rl and isinstance(back.oar, OARSettings)
    assert load(text)["oar"]["tau"] == 0.2  # readable: the OAR settings under their own key


def test_overrides_by_flat_name_path_or_field_and_a_loud_error_otherwise():
    rl = RLSettings()
    assert with_overrides(rl, {"tau": 0.2}) == with_overrides(rl, {"oar.tau": 0.2})
    assert (
        with_overrides(rl, {"tau": 0.2}).oar.tau == 0.2 and rl.oar.tau == OARSettings.tau
    )  # rl is unchanged
    assert with_overrides(rl, {"prompts_per_step": 2}).prompts_per_step == 2
    assert [canonical_key(k) for k in ("oar.beta", "beta", "kl_beta", "steps")] == [
        "beta",
        "beta",
        "kl_beta",
        "steps",
    ]
    for bad in ("taux", "oar.method", "oar.scorer_options", "method", "oar.steps", "oar"):
        with pytest.raises(ValueError, match="not an (RL|OAR) setting"):
            with_overrides(rl, {bad: 1})
    with pytest.raises(ValueError, match="tau"):
        with_overrides(rl, {"tau": 1.5})  # validated as OARSettings validates
    assert "tau" in OAR_KEYS and "method" not in OAR_KEYS


def test_the_arm_owns_the_method_and_its_options():
    rl = RLSettings()
    assert rl.arm_settings("entropy") == OARSettings(method="entropy")
    with pytest.raises(ValueError, match="Arm.scorer_options"):
        RLSettings(oar=OARSettings(scorer_options={"upcast": True}))
    with pytest.raises(ValueError, match="probe_warmup_steps"):
        RLSettings(oar=OARSettings(probe_warmup_steps=-1))


def test_study_sweeps_by_flat_name_or_path_and_refuses_unknown_keys(tmp_path, capsys):
    from oarl.cli.study import main

    out = tmp_path / "s"
    assert (
        main(["--task", "arith", "--sweep", "oar.tau=0.2,0.4", "beta=1", "--report-only", "--out", str(out)])
        == 0
    )
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["sweep"] == {"tau": [0.2, 0.4], "beta": [1]}  # recorded by flat name, as earlier studies
    assert RLSettings(**config["rl"]) == RLSettings(**{**asdict(RLSettings()), **config["rl"]})
    assert main(["--task", "arith", "--sweep", "taux=0.2", "--report-only", "--out", str(out)]) == 2
    assert "--sweep 'taux': not an RL setting" in capsys.readouterr().err


def test_demo_arguments_have_no_sentinels():
    from oarl.cli.demo import DemoArguments, settings

    for f in fields(DemoArguments):
        assert not (isinstance(f.default, int | float) and f.default < 0), f.name
    for bad in (dict(sft_steps=0), dict(learning_rate=-1.0), dict(steps=-1)):
        with pytest.raises(ValueError, match="leave it out"):
            settings(DemoArguments(**bad))
