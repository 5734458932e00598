"""The mechanism test and the arms' step cost, from a finished ``oarl study --task wordop`` folder.

Mechanism (H2 of the real-LM study; the families comparison's mechanism test): does the mean gated weight a
scorer puts on the decisive tokens of the *warm* model (``benchmarks/role_weights_credit.py``) predict its
paired ΔAUC over GRPO across the arms? Spearman over the arms (GRPO: weight 1.0, ΔAUC 0), scipy's exact p for
n <= 9. Each arm's scorer is its ``Arm.role_name`` (the study's ``resample`` arm resamples from every ``;``
step, so it reads ``resample_step``). Cost: each arm's median TRL ``step_time`` and ``oar/scorer_seconds`` over all
its steps and seeds (the first step of each run dropped) and the step's ratio to GRPO's; every arm ran in the
same study, two runs at a time, so the ratios are side by side.

    PYTHONPATH=src python benchmarks/real_lm_mechanism.py runs/study/wordop_study \\
        docs/real_lm_study/role_weights_wordop.json --out docs/real_lm_study/mechanism.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy import stats

from oarl.lab.testbed.experiment import get_arm
from oarl.lab.testbed.study import finished, read_training


def only(mapping: dict, what: str) -> str:
    """The single key of ``mapping``; an error naming the flag to pass when there are several."""
    if len(mapping) != 1:
        raise SystemExit(f"several {what}s ({', '.join(mapping)}): pass --{what} with one of them")
    return next(iter(mapping))


def mechanism(paired: dict, scorers: dict) -> dict:
    """Spearman of the weight on the decision vs ΔAUC over the arms in ``paired`` (GRPO as weight 1, ΔAUC 0)."""
    rows = [{"arm": "grpo", "decision_weight": 1.0, "delta_auc": 0.0, "n": None}]
    for arm, p in paired.items():
        d = p["auc_sampled"]
        weight = scorers[get_arm(arm).role_name]["weights"]["decision"]
        rows.append({"arm": arm, "decision_weight": weight, "delta_auc": d["diff"]["mean"], "n": d["n"]})
    rho = stats.spearmanr([r["decision_weight"] for r in rows], [r["delta_auc"] for r in rows])
    return {"rows": rows, "spearman": float(rho.statistic), "p": float(rho.pvalue), "arms": len(rows)}


def step_cost(study: Path, condition: str) -> dict:
    """``{arm: {median_step_s, median_scorer_s, ratio_to_grpo, steps}}`` from the finished runs' training logs
    (empty when GRPO's logs were not kept)."""
    steps: dict[str, list[float]] = {}
    scorer: dict[str, list[float]] = {}
    for key, s in finished(study).items():
        if s["condition"] != condition:
            continue
        lines = read_training(study, key)[1:]  # none where the run's log was not kept
        steps.setdefault(s["arm"], []).extend(r["step_time"] for r in lines if "step_time" in r)
        scorer.setdefault(s["arm"], []).extend(r.get("oar/scorer_seconds") or 0.0 for r in lines)
    if not steps.get("grpo"):
        return {}
    base = statistics.median(steps["grpo"])
    return {
        arm: {
            "median_step_s": round(statistics.median(t), 2),
            "median_scorer_s": round(statistics.median(scorer[arm]), 2),
            "ratio_to_grpo": round(statistics.median(t) / base, 2),
            "steps": len(t),
        }
        for arm, t in sorted(steps.items())
        if t
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path)
    p.add_argument("role_weights", type=Path)
    p.add_argument("--condition", default=None, help="the study's condition (default: its only one)")
    p.add_argument("--level", default=None, help="the role-weight JSON's level (default: its only one)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    conditions = json.loads((a.study / "results.json").read_text())["conditions"]
    condition = a.condition or only(conditions, "condition")
    levels = json.loads(a.role_weights.read_text())
    scorers = levels[a.level or only(levels, "level")]["scorers"]
    h2 = mechanism(conditions[condition]["paired"], scorers)
    cost = step_cost(a.study, condition)
    for r in h2["rows"]:
        print(f"{r['arm']:10s} weight on decision {r['decision_weight']:.2f}  ΔAUC {r['delta_auc']:+.3f}")
    print(f"mechanism: Spearman {h2['spearman']:+.2f} (p {h2['p']:.3f}, {h2['arms']} arms)")
    for arm, c in cost.items():
        print(
            f"{arm:10s} step {c['median_step_s']:.1f} s (scorer {c['median_scorer_s']:.1f} s)"
            f"  x{c['ratio_to_grpo']:.2f} GRPO ({c['steps']} steps)"
        )
    if a.out:
        a.out.write_text(json.dumps({"h2": h2, "cost": cost}, indent=1))
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
