"""A study's paired results over its earlier seeds and seeds run later, when the earlier runs' logs are gone.

The real-LM study's first three seeds (10-12) survive only as their committed summary statistics (the run logs
were not kept), and its seeds 13-14 ran later with the same command. The paired AUC test over all five seeds is
still exact for the mean difference, its t interval, the t-test, ``d_z`` and the seeds ahead
(:func:`oarl.lab.testbed.stats.pooled_paired`); the signed-rank test and the interval of the share of the oracle's
gain need every seed's value and are not given.

    python benchmarks/pool_study_seeds.py --earlier docs/real_lm_study/study --new runs/study/wordop_study \\
        --seeds 13,14 --tested oar_g,oar_p,info_gain,tree,entropy --out docs/real_lm_study/five_seeds.json \\
        --role-weights docs/real_lm_study/role_weights_wordop.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from oarl.lab.testbed.contrasts import holm, per_seed
from oarl.lab.testbed.experiment import get_arm
from oarl.lab.testbed.report import run_quantities
from oarl.lab.testbed.stats import pooled_paired
from oarl.lab.testbed.study import finished, read_curves


def pool(earlier: Path, new: Path, seeds: list[int], tested: list[str]) -> dict:
    """``{"arms": {arm: {...}}, "baseline_gain": ...}`` over the earlier study's seeds and ``seeds`` of ``new``."""
    res = json.loads((earlier / "results.json").read_text())
    (cond,) = res["conditions"]
    c = res["conditions"][cond]
    summaries = {k: v for k, v in finished(new).items() if v["seed"] in seeds and v["condition"] == cond}
    values = per_seed(new, summaries)[cond]
    missing = [f"{a}/{s}" for a in ["grpo", *c["paired"]] for s in seeds if s not in values.get(a, {})]
    if missing:
        raise SystemExit(f"pool_study_seeds: runs not finished in {new}: {', '.join(missing)}")
    arms: dict[str, dict] = {}
    for arm, p in c["paired"].items():
        new_diffs = [values[arm][s] - values["grpo"][s] for s in seeds]
        q = pooled_paired(p["auc_sampled"], new_diffs)
        arms[arm] = {**q.as_dict(), "seeds": sorted(c["arms"][arm]["seeds"] + seeds)}
    oracle = arms.get("oracle", {}).get("diff", {}).get("mean", math.nan)
    for arm, row in arms.items():
        row["share"] = row["diff"]["mean"] / oracle if arm != "oracle" and oracle else math.nan
        row["share_ci"] = [math.nan, math.nan]  # needs every seed's value
    for arm, p in zip(tested, holm([arms[a]["p_t"] for a in tested]), strict=True):
        arms[arm]["p_holm"] = p
    curves = read_curves(new, summaries)
    gains = [
        run_quantities(s, curves[k], None)["gain_sampled"] for k, s in summaries.items() if s["arm"] == "grpo"
    ]
    n1 = len(c["arms"]["grpo"]["seeds"])
    gain = (c["baseline_gain"] * n1 + sum(gains)) / (n1 + len(gains))
    return {"condition": cond, "baseline_gain": gain, "arms": arms}


def mechanism(pooled: dict, role_weights: Path) -> dict:
    """H2 over the pooled seeds: Spearman of the warm model's mean gated weight on the decisive tokens
    (``benchmarks/role_weights_credit.py``) against each arm's pooled ΔAUC (GRPO: weight 1, ΔAUC 0)."""
    from scipy import stats

    (level,) = json.loads(role_weights.read_text()).values()
    rows = [{"arm": "grpo", "decision_weight": 1.0, "delta_auc": 0.0}]
    for arm, r in pooled["arms"].items():
        scorer = level["scorers"].get(get_arm(arm).oar_method)
        if scorer is not None:
            rows.append(
                {"arm": arm, "decision_weight": scorer["weights"]["decision"], "delta_auc": r["diff"]["mean"]}
            )
    rho, p = stats.spearmanr([r["decision_weight"] for r in rows], [r["delta_auc"] for r in rows])
    return {"rows": rows, "spearman": float(rho), "p": float(p), "n": len(rows)}


def markdown(pooled: dict) -> str:
    lines = [
        f"GRPO's mean gain in held-out sampled accuracy: {pooled['baseline_gain']:+.3f}",
        "",
        "| arm | ΔAUC vs GRPO [95% CI] | d_z | seeds ahead | p (t) | p (Holm) | share of the oracle's gain |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, r in pooled["arms"].items():
        d = r["diff"]
        holm_p = f"{r['p_holm']:.3f}" if "p_holm" in r else "-"
        share = "-" if math.isnan(r["share"]) else f"{r['share']:.0%}"
        lines.append(
            f"| {get_arm(arm).label} | {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] | {r['d_z']:+.2f} | "
            f"{r['wins']}/{r['n']} | {r['p_t']:.3f} | {holm_p} | {share} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--earlier", type=Path, required=True, help="the committed study folder (results.json)")
    ap.add_argument("--new", type=Path, required=True, help="the study folder holding the later seeds' runs")
    ap.add_argument("--seeds", required=True, help="the later seeds, e.g. 13,14")
    ap.add_argument("--tested", required=True, help="the arms of the Holm family")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--role-weights", type=Path, help="the warm model's role weights: H2 over the pooled seeds"
    )
    a = ap.parse_args()
    pooled = pool(a.earlier, a.new, [int(s) for s in a.seeds.split(",")], a.tested.split(","))
    if a.role_weights:
        pooled["mechanism"] = mechanism(pooled, a.role_weights)
    pooled["command"] = "python benchmarks/pool_study_seeds.py " + " ".join(sys.argv[1:])
    a.out.write_text(json.dumps(pooled, indent=1) + "\n")
    print(markdown(pooled))
    if "mechanism" in pooled:
        m = pooled["mechanism"]
        print(
            f"\nH2: Spearman(decision weight, ΔAUC) = {m['spearman']:+.2f} over {m['n']} arms (p {m['p']:.3f})"
        )


if __name__ == "__main__":
    main()
