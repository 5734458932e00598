"""benchmarks/paper_fidelity.py on a tiny random model: the authors' re-stated OAR-P matches oarl once the
answer is appended, their OAR-G matches given the same noise, and only theirs touches ``.grad``."""

import importlib.util
from pathlib import Path

import torch
from conftest import tiny_lm

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_fidelity.py"


def _script():
    spec = importlib.util.spec_from_file_location("paper_fidelity", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_fidelity_tiny_model():
    mod = _script()
    model = tiny_lm("llama", vocab=64)
    g = torch.Generator().manual_seed(0)
    segs = [
        {
            k: torch.randint(1, 64, (n,), generator=g).tolist()
            for k, n in zip(("before", "reasoning", "conclude", "answer"), (5, 8, 2, 3), strict=True)
        }
        for _ in range(3)
    ]
    res = mod.measure(model, segs, pad_id=0, noise_std=1e-2)
    for p in mod.PROBES:
        # float32 round-off of KLs near 1e-7 on a random model; ~1e-6 on SmolLM2 (docs/paper.md)
        assert res["oar_p"][p]["max_rel_appended"] < 2e-2
    assert res["oar_p"]["lt_logits"]["spearman_as_written"] > 0.99  # LT-Logits never reads the answer
    assert res["oar_g"]["as_mean"]["same_noise_rho"] > 0.99
    assert res["gate"]["as_mean"]["max_abs_diff"] < 1e-4
    assert res["gate"]["as_mean"]["overwrite_levels"][0] == 0.4
    assert res["grad"]["oarl_grad_unchanged"]
    assert abs(res["grad"]["policy_grad_share_kept"]) < 1e-3  # zero_grad wiped the policy gradient
