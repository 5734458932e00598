"""Turn a study's runs into its results: per condition and arm, intervals over seeds and paired comparisons.

For every condition x arm (seeds as replicates): final held-out sampled and greedy accuracy, the area under
the sampled-accuracy curve (its mean level over training), steps to reach 80% of GRPO's final gain, the
entropy of chatter and of causal tokens at the end, ESS-ratio and run time; and, seed by seed against the
baseline arm of the same condition, the paired difference with its 95% t-interval, paired-t and Wilcoxon
p-values and the effect size d_z.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from oarl.lab.testbed.stats import area_under_curve, paired, steps_to_reach, t_interval
from oarl.lab.testbed.study import read_curves

#: (name, how to read it from a run) of the per-run quantities compared across arms.
PRIMARY = "auc_sampled"


def run_quantities(summary: dict, curve: list[dict], baseline_gain: float | None) -> dict[str, float]:
    """Per-run numbers (see module docstring). ``baseline_gain``: GRPO's mean final gain in this condition."""
    steps = [r["step"] for r in curve]
    sampled = [r.get("sampled_accuracy", math.nan) for r in curve]
    start = sampled[0] if sampled else math.nan
    out = {
        "start_sampled": start,
        "final_sampled": sampled[-1] if sampled else math.nan,
        "final_greedy": curve[-1]["accuracy"] if curve else math.nan,
        "gain_sampled": (sampled[-1] - start) if sampled else math.nan,
        "auc_sampled": area_under_curve(steps, sampled) if sampled else math.nan,
        "final_pass_none": curve[-1].get("pass_none", math.nan) if curve else math.nan,
        "final_pass_all": curve[-1].get("pass_all", math.nan) if curve else math.nan,
        "final_length": curve[-1].get("length", math.nan) if curve else math.nan,
        "ess_ratio": summary.get("ess_ratio", math.nan),
        "policy_entropy": summary.get("entropy", math.nan),
        "seconds": summary.get("seconds", math.nan),
    }
    for role in ("causal", "chatter", "distractor", "format"):
        out[f"final_entropy_{role}"] = curve[-1].get(f"entropy/{role}", math.nan) if curve else math.nan
    if baseline_gain is not None and baseline_gain > 0 and sampled:
        reach = steps_to_reach(steps, sampled, start + 0.8 * baseline_gain)
        out["reached_80pct_grpo_gain"] = float(math.isfinite(reach))
        out["steps_to_80pct_grpo_gain"] = reach if math.isfinite(reach) else math.nan  # see reached_*
    return out


def summarize(out_dir: Path, summaries: dict[str, dict], baseline: str = "grpo") -> dict:
    """The study's results JSON: ``{"conditions": {cond: {"arms": {arm: {...}}, "paired": {...}}}}``."""
    curves = read_curves(out_dir, summaries)
    by_cond: dict[str, dict[str, dict[int, str]]] = defaultdict(lambda: defaultdict(dict))
    for key, s in summaries.items():
        by_cond[s["condition"]][s["arm"]][s["seed"]] = key
    results: dict = {"baseline": baseline, "primary": PRIMARY, "conditions": {}}
    for cond, arms in by_cond.items():
        base_gain = None
        if baseline in arms:
            gains = [
                run_quantities(summaries[k], curves[k], None)["gain_sampled"] for k in arms[baseline].values()
            ]
            base_gain = t_interval(gains).mean
        per_arm: dict[str, dict[int, dict]] = {
            arm: {seed: run_quantities(summaries[k], curves[k], base_gain) for seed, k in seeds.items()}
            for arm, seeds in arms.items()
        }
        cond_out: dict = {"baseline_gain": base_gain, "arms": {}, "paired": {}, "curves": {}}
        for arm, seeds in per_arm.items():
            names = sorted({n for q in seeds.values() for n in q})
            cond_out["arms"][arm] = {
                "label": next(iter(summaries[k]["label"] for k in arms[arm].values())),
                "seeds": sorted(seeds),
                **{n: t_interval([q.get(n, math.nan) for q in seeds.values()]).as_dict() for n in names},
            }
            cond_out["curves"][arm] = _mean_curves({s: curves[arms[arm][s]] for s in seeds})
            if arm != baseline and baseline in per_arm:
                base = per_arm[baseline]
                cond_out["paired"][arm] = {
                    n: paired(
                        {s: q[n] for s, q in seeds.items() if n in q},
                        {s: q[n] for s, q in base.items() if n in q},
                    ).as_dict()
                    for n in ("auc_sampled", "final_sampled", "final_greedy", "steps_to_80pct_grpo_gain")
                }
        results["conditions"][cond] = cond_out
    return results


def _mean_curves(curves: dict[int, list[dict]]) -> dict:
    """Per evaluation step: mean and 95% t-interval over seeds of each evaluated quantity."""
    steps = sorted({r["step"] for c in curves.values() for r in c})
    keys = sorted(
        {k for c in curves.values() for r in c for k, v in r.items() if isinstance(v, (int, float))}
        - {"step", "seed"}
    )
    out: dict = {"step": steps}
    for k in keys:
        rows = []
        for st in steps:
            vals = [r[k] for c in curves.values() for r in c if r["step"] == st and k in r]
            rows.append(t_interval(vals).as_dict())
        out[k] = rows
    return out


def _ci(d: dict) -> str:
    if not d or d.get("n", 0) == 0:
        return "-"
    if d["n"] < 2:
        return f"{d['mean']:.3f}"
    return f"{d['mean']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]"


def markdown_table(results: dict) -> str:
    """One table per condition: per arm, the quantities with 95% CIs and the paired difference vs GRPO."""
    lines = []
    for cond, c in results["conditions"].items():
        lines += [
            f"**{cond}** (GRPO's mean gain in sampled accuracy: {c['baseline_gain'] if c['baseline_gain'] is not None else float('nan'):.3f})",
            "",
            "| arm | n | final sampled | final greedy | AUC sampled | Δ AUC vs GRPO [95% CI], p (t / Wilcoxon), d_z "
            "| steps to 80% of GRPO gain | H chatter | H causal | ESS |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for arm, a in c["arms"].items():
            pr = c["paired"].get(arm, {}).get("auc_sampled")
            if not pr:
                delta = "-"
            elif math.isfinite(pr["diff"]["lo"]):
                delta = (
                    f"{pr['diff']['mean']:+.3f} [{pr['diff']['lo']:+.3f}, {pr['diff']['hi']:+.3f}], "
                    f"p {pr['p_t']:.3f} / {pr['p_wilcoxon']:.3f}, d_z {pr['d_z']:+.2f}"
                )
            else:  # one seed: no interval and no test
                delta = f"{pr['diff']['mean']:+.3f} (1 seed: no CI)"
            steps = a.get("steps_to_80pct_grpo_gain", {})
            lines.append(
                f"| {a['label']} | {a['final_sampled']['n']} | {_ci(a['final_sampled'])} | {_ci(a['final_greedy'])} "
                f"| {_ci(a['auc_sampled'])} | {delta} | {_ci(steps) if steps else '-'} "
                f"| {_ci(a.get('final_entropy_chatter', {}))} | {_ci(a.get('final_entropy_causal', {}))} "
                f"| {a['ess_ratio']['mean']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)
