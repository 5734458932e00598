"""An ``RLSettings.extra`` or ``Arm.trl_fields`` key that run_arm also sets is refused at config time (it was a
TypeError, 'multiple values', when the run started; or, for oar_scorer_options, silently replaced)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap

import pytest

from oarl.batch.settings import OARSettings, config_name
from oarl.lab.testbed import experiment
from oarl.lab.testbed.experiment import RUN_FIELDS, Arm, RLSettings


@pytest.mark.parametrize("key", ["oar_tau", "oar_method", "oar_scorer_options", "beta", "learning_rate"])
def test_a_field_run_arm_sets_is_refused_where_it_is_given(key):
    with pytest.raises(ValueError, match="RLSettings.extra sets"):
        RLSettings(extra={key: 0.3})
    with pytest.raises(ValueError, match="trl_fields sets"):
        Arm("x", "X", "none", ((key, 0.3),))


def test_other_fields_pass():
    assert RLSettings(extra={"top_entropy_quantile": 0.2}).extra
    with pytest.raises(ValueError, match="RLSettings.extra sets"):  # every OAR field is RLSettings.oar's
        RLSettings(extra={"oar_skip_zero_advantage": False})
    assert Arm("x", "X", "none", (("top_entropy_quantile", 0.2),)).trl_fields


def test_run_fields_are_the_keywords_run_arm_passes():
    tree = ast.parse(textwrap.dedent(inspect.getsource(experiment.run_arm)))
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "OARConfig"
    ]
    assert len(calls) == 1
    passed = {k.arg for k in calls[0].keywords if k.arg is not None}
    derived = {config_name(f.name) for f in dataclasses.fields(OARSettings)}  # passed as **config_fields(oar)
    assert not passed & derived and passed | derived == RUN_FIELDS
