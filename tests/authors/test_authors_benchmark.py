"""benchmarks/authors_agreement.py's tiny-model half runs and reports what docs/authors.md's table reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import single_thread

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "authors_agreement.py"


def test_authors_agreement_tiny():
    spec = importlib.util.spec_from_file_location("authors_agreement", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with single_thread():
        res = mod.tiny()
    assert res["ktae"]["max_rel_gamma_tf0_p_below_one"] < 1e-5
    assert res["treerl"]["max_rel_first_tokens_scaled"] < 1e-6
    assert res["igpo_per_step"]["max_rel_answer_likelihood"] < 1e-5
    assert res["vineppo"]["max_rel_same_draws_truncated_as_rewarded"] < 1e-12
    assert res["stare_C2"]["max_abs_weight_diff"] == 0.0
    assert res["prime"]["max_rel_q"] < 1e-5
    assert res["cdpo"]["max_rel_weight"] < 1e-5
