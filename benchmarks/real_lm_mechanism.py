"""H2 of the real-LM study and the arms' step cost, from a finished ``oarl study --task wordop`` folder.

H2: does the mean gated weight a scorer puts on the decisive tokens of the *warm* model
(``benchmarks/role_weights_credit.py --task wordop``) predict its paired ΔAUC over GRPO across the arms?
Spearman over the arms (GRPO: weight 1.0, ΔAUC 0), scipy's exact p for n <= 9. Cost: each arm's median
TRL ``step_time`` over all its steps and seeds (the first step of each run dropped) and its ratio to GRPO's;
every arm ran in the same study, two runs at a time, so the ratios are side by side.

    PYTHONPATH=src python benchmarks/real_lm_mechanism.py runs/study/wordop_study \\
        docs/real_lm_study/role_weights_wordop.json --out docs/real_lm_study/mechanism.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy import stats

from oarl.lab.testbed.study import finished, read_training

#: Study arm -> the scorer name role_weights_credit.py reports it under.
SCORER_OF = {"oracle": "oracle", "oar_g": "gradient", "oar_p": "perturbation", "info_gain": "info_gain",
             "tree": "tree", "entropy": "entropy"}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path)
    p.add_argument("role_weights", type=Path)
    p.add_argument("--condition", default="wordop")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    results = json.loads((a.study / "results.json").read_text())["conditions"][a.condition]
    weights = json.loads(a.role_weights.read_text())["wordop"]["scorers"]
    rows = [{"arm": "grpo", "decision_weight": 1.0, "delta_auc": 0.0, "n": None}]
    for arm, scorer in SCORER_OF.items():
        if arm in results["paired"]:
            d = results["paired"][arm]["auc_sampled"]
            rows.append({"arm": arm, "decision_weight": weights[scorer]["weights"]["decision"],
                         "delta_auc": d["diff"]["mean"], "n": d["n"]})  # fmt: skip
    rho = stats.spearmanr([r["decision_weight"] for r in rows], [r["delta_auc"] for r in rows])
    times: dict[str, list[float]] = {}
    for key, s in finished(a.study).items():
        steps = [r["step_time"] for r in read_training(a.study, key) if "step_time" in r][1:]
        times.setdefault(s["arm"], []).extend(steps)
    base = statistics.median(times["grpo"])
    cost = {arm: {"median_step_s": round(statistics.median(t), 2), "ratio_to_grpo": round(statistics.median(t) / base, 2),
                  "steps": len(t)} for arm, t in sorted(times.items())}  # fmt: skip
    out = {"h2": {"rows": rows, "spearman": rho.statistic, "p": rho.pvalue, "arms": len(rows)}, "cost": cost}
    for r in rows:
        print(f"{r['arm']:10s} weight on decision {r['decision_weight']:.2f}  ΔAUC {r['delta_auc']:+.3f}")
    print(f"H2: Spearman {rho.statistic:+.2f} (p {rho.pvalue:.3f}, {len(rows)} arms)")
    for arm, c in cost.items():
        print(
            f"{arm:10s} step {c['median_step_s']:.1f} s  x{c['ratio_to_grpo']:.2f} GRPO ({c['steps']} steps)"
        )
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
