"""The scorer registry: declared specs, options validated at config time, one settings object."""

import dataclasses

import pytest
import torch
from conftest import layout, tiny_lm

from oarl.batch.credit import score_and_gate
from oarl.batch.settings import OARSettings, methods
from oarl.batch.step import OARStep
from oarl.core.layout import Layout
from oarl.core.scorers import (
    SCORERS,
    ScorerSpec,
    get_scorer,
    model_free_scorers,
    shared_options,
    upcast_scorers,
)

CPU = dict(use_cpu=True, bf16=False, report_to="none")
#: issue 35's families, experimental until a study says otherwise.
NEW_FAMILIES = ("gtpo", "high_entropy", "stare", "prime", "cdpo", "hicra", "anchor")


def test_done_when_a_misspelled_option_fails_at_config_time_naming_the_valid_keys(tmp_path):
    from oarl import OARConfig

    with pytest.raises(ValueError, match=r"no option\(s\) \['upcsat'\].*'upcast'"):
        OARConfig(
            output_dir=str(tmp_path), oar_method="gradient_rms", oar_scorer_options={"upcsat": True}, **CPU
        )


def test_options_are_frozen_dataclasses_with_the_signature_defaults():
    spec = get_scorer("perturbation")
    opts = spec.validate({"max_batch_tokens": 7})
    assert dataclasses.is_dataclass(opts) and opts.max_batch_tokens == 7 and opts.probe == "as_mean"
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.probe = "as_joint"
    assert get_scorer("gradient").defaults()["noise_std"] == 1e-3


def test_upcast_is_refused_by_name_where_a_scorer_has_none():
    assert {"perturbation", "gradient", "gradient_rms", "gradient_avg", "linearized", "path"} <= set(
        upcast_scorers()
    )
    with pytest.raises(ValueError, match="does not run in float32 on request"):
        OARSettings(method="perturbation_linear", scorer_options={"upcast": True})


def test_a_named_setting_and_a_scorer_option_cannot_both_set_noise_std():
    with pytest.raises(ValueError, match="also named settings"):
        OARSettings(method="gradient", noise_std=0.1, scorer_options={"noise_std": 0.2})
    # Either alone is fine; the named one applies only to scorers that take it.
    assert (
        OARSettings(method="gradient", scorer_options={"noise_std": 0.2}).resolved_options()["noise_std"]
        == 0.2
    )
    assert OARSettings(method="gradient", noise_std=0.1).resolved_options()["noise_std"] == 0.1
    assert "noise_std" not in OARSettings(method="perturbation", noise_std=0.1).resolved_options()
    assert "noise_std" not in OARSettings(method="gradient").resolved_options()  # the scorer's default


def test_nested_prerank_options_and_values_are_checked_at_config_time():
    with pytest.raises(ValueError, match=r"'gradient' has no option\(s\) \['noise'\]"):
        OARSettings(method="perturbation_prerank", scorer_options={"prerank_options": {"noise": 0.1}})
    with pytest.raises(ValueError, match="prerank must be a cheap scorer"):
        OARSettings(method="perturbation_span", scorer_options={"prerank": "perturbation"})
    with pytest.raises(ValueError, match="spread must be one of"):
        OARSettings(method="perturbation_refine", scorer_options={"spread": "nope"})
    with pytest.raises(ValueError, match=r"'none' has no option\(s\) \['window'\]"):
        OARSettings(method="none", scorer_options={"window": 4})


def test_inputs_reach_only_the_scorers_that_need_them():
    ids, am, rm, an = layout([(2, 5, 1)])
    oracle = rm.clone()
    oracle[0, 3] = False
    got = get_scorer("oracle")(None, ids, am, rm, an, oracle_mask=oracle, generator=torch.Generator())
    assert torch.equal(got, (oracle & rm).float())
    assert torch.equal(get_scorer("uniform")(None, ids, am, rm, an, generator=torch.Generator()), rm.float())


def test_specs_are_consistent():
    assert set(model_free_scorers()) == {
        "none",
        "random",
        "uniform",
        "oracle",
        "tree",
        "ktae",
        "hicra",
        "cdpo",
    }
    for name, spec in SCORERS.items():
        assert spec.name == name and spec.doc, name
        assert (spec.status == "experimental") == bool(spec.why), name
    assert {n for n, s in SCORERS.items() if s.status == "experimental"} == {
        "path",
        "gradient_avg",
        "perturbation_horizon",
        "tree",
        "ktae",
        "info_gain",
        "resample",
        *NEW_FAMILIES,
    }
    weights = {n for n, s in SCORERS.items() if s.output == "weights"}
    assert weights == {"gtpo", "high_entropy", "stare", "cdpo", "hicra"}
    assert shared_options("entropy", probe="as_mean", noise_std=0.1) == {}
    assert shared_options("gradient", probe="lt_logits", noise_std=None) == {"probe": "lt_logits"}


def test_plain_grpo_is_the_registered_uniform_scorer_none():
    """'none' is a scorer like any other; what is special about it is declared (``uniform``), not its name."""
    spec = get_scorer("none")
    assert spec.uniform and spec.model_free and spec.display == "GRPO" and not spec.needs
    assert [n for n, s in SCORERS.items() if s.uniform] == ["none"]
    assert methods()[0] == "none" and set(methods()) == set(SCORERS)
    with pytest.raises(ValueError, match="a uniform scorer reads nothing"):
        ScorerSpec("_bad", "controls", frozenset({"model"}), "control", "forward", uniform=True)
    ids, am, rm, an = layout([(2, 5, 1), (3, 4, 2)])
    credit = score_and_gate(None, Layout(ids, am, rm, an), OARSettings(method="none"), start=2)
    assert torch.equal(credit.weights, torch.ones_like(credit.weights)) and not credit.nonfinite.any()


def test_no_method_name_is_special_cased_outside_the_registry():
    """No ``== "none"`` / ``!= "none"`` branch on a method anywhere in src/ (plain GRPO is read from its spec)."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "oarl"
    pattern = re.compile(
        r"""(method|oar_method)\w*\s*[!=]=\s*["']none["']|["']none["']\s*[!=]=\s*\w*method"""
    )
    hits = [
        f"{p.relative_to(src)}:{i}"
        for p in src.rglob("*.py")
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_registered_scorers_score_through_the_spec_call():
    model = tiny_lm()
    ids, am, rm, an = layout([(2, 5, 1), (3, 4, 2)])
    for name in ("perturbation", "gradient_rms"):
        spec = get_scorer(name)
        via_spec = spec(model, ids, am, rm, an, generator=torch.Generator().manual_seed(0))
        kw = {"generator": torch.Generator().manual_seed(0)} if "randomness" in spec.needs else {}
        assert torch.equal(via_spec, spec.fn(model, Layout(ids, am, rm, an), **kw))  # exact: the same call


def test_a_weights_scorer_is_not_gated_and_a_bad_output_is_refused():
    from oarl.batch.credit import score_and_gate
    from oarl.core.scorers import ScorerSpec

    ids, am, rm, an = layout([(2, 5, 1), (3, 4, 2)])
    lay = Layout(ids, am, rm, an, group_ids=torch.tensor([0, 0]), rewards=torch.tensor([1.0, 0.0]))

    class Pieces:
        def decode(self, ids, **_):
            return "wait " * len(ids)

    credit = score_and_gate(None, lay, OARSettings(method="hicra"), tokenizer=Pieces())
    assert torch.equal(credit.weights[rm], credit.scores[rm])  # exact: the scorer's weights, as they are
    assert (credit.weights[~rm] == 1).all() and not torch.allclose(credit.weights[rm].sum(), rm.sum().float())
    with pytest.raises(ValueError, match="output 'logits' not in"):
        ScorerSpec("x", "f", frozenset(), "control", "none", output="logits")


def test_the_trainer_refuses_a_scorer_whose_needs_it_cannot_meet():
    from oarl.integrations.trl.trainer import check_needs

    check_needs("oracle", get_scorer("oracle").needs)
    with pytest.raises(ValueError, match="needs token_labeler="):
        OARStep(OARSettings(method="oracle"))  # the step refuses the oracle without labels, once
    check_needs("tree", get_scorer("tree").needs)
    with pytest.raises(ValueError, match=r"needs \['reference_answer'\]"):
        check_needs("future", frozenset({"model", "reference_answer"}))


def test_settings_defaults_are_written_once(tmp_path):
    """OARConfig's and the testbed's OAR defaults are OARSettings's (which reads the gate's from core.gating)."""
    from oarl import OARConfig
    from oarl.core import gating
    from oarl.integrations.trl.trainer import config_settings
    from oarl.lab.testbed.experiment import RLSettings

    assert config_settings(OARConfig(output_dir=str(tmp_path), **CPU), None) == OARSettings()
    rl, oar = RLSettings(), OARSettings()
    assert (
        rl.oar == oar and rl.oar.noise_std is None
    )  # the testbed holds an OARSettings, no copy of its fields
    assert (oar.tau, oar.beta, oar.floor) == (gating.TAU, gating.BETA, gating.FLOOR)
