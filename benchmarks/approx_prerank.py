"""Pre-rank + exact (issue 15, option b) with each cheap scorer as the pre-ranker.

``perturbation_prerank`` scores the top ``fraction`` of tokens by the pre-ranker with exact OAR-P and keeps the
scaled pre-rank score elsewhere. Compared with exact OAR-P (mean per-row Spearman, top-10% overlap, cost in
forward token-passes) on the random-init tiny Llama models (T = 256, 3 rows, init std 0.02 and 0.1) and on the
flag task's warm start (task-written completions, chatter 60-80 characters, T ≈ 157, 12 rows).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/approx_prerank.py   (~7 min; writes approx_prerank.json)
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from approx_fidelity import random_rows, tiny_model  # noqa: E402
from approx_trained import MODEL, _args, _batch  # noqa: E402

from oarl.core.layout import Layout  # noqa: E402
from oarl.core.scorers import SCORERS, perturbation_scores  # noqa: E402
from oarl.lab.testbed.fidelity import PassCounter, row_fidelity  # noqa: E402
from oarl.utils.atomic import atomic_write_json  # noqa: E402

PRERANKERS = ("gradient", "gradient_rms", "linearized", "perturbation_linear")
FRACTIONS = (0.05, 0.2)


def compare(model, args: list[torch.Tensor]) -> dict:
    with PassCounter(model) as c:
        ref = perturbation_scores(model, Layout(*args))
    out = {"exact_units": c.cost_units}
    for pre in PRERANKERS:
        for f in FRACTIONS:
            with PassCounter(model) as c:
                s = SCORERS["perturbation_prerank"](model, *args, prerank=pre, fraction=f)
            r = row_fidelity(s, ref, args[2])
            out[f"{pre} f={f}"] = {"spearman": statistics.mean(r["spearman"]),
                                   "top_overlap": statistics.mean(r["top_overlap"]),
                                   "cheaper_units": out["exact_units"] / c.cost_units}  # fmt: skip
            print(pre, f, out[f"{pre} f={f}"], flush=True)
    return out


def main() -> None:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    res = {}
    for init in (0.02, 0.1):
        b = random_rows(3, 256)
        res[f"random init {init}, T=256"] = compare(tiny_model(init), _args(b))
    batch = _batch(MODEL, 12, (60, 80))
    res["flag warm start, T~157"] = compare(AutoModelForCausalLM.from_pretrained(MODEL).eval(), _args(batch))
    atomic_write_json(Path("benchmarks/results/approx_prerank.json"), res, indent=1)


if __name__ == "__main__":
    main()
