"""Pre-registered contrasts of a study: tested arms against several reference arms, paired by seed, with the
share of the ceiling arm's gain each one reaches and Holm's adjustment over the family of tests.

The primary test of a credit scorer (docs/credit_study.md) is its paired AUC gain over GRPO; a claim needs
the 95% CI above 0, a Holm-adjusted paired t-test p < 0.05 over every (scorer, condition) tested against
the baseline, and at least ``min_share`` of the oracle's mean gain in that condition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from oarl.lab.testbed.report import PRIMARY, run_quantities
from oarl.lab.testbed.stats import paired, share_interval
from oarl.lab.testbed.study import read_curves
from oarl.utils.atomic import atomic_write_json, atomic_write_text


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order; NaN stays NaN and is not
    counted in the family."""
    idx = sorted((i for i, p in enumerate(pvalues) if math.isfinite(p)), key=lambda i: pvalues[i])
    m, out, running = len(idx), [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def per_seed(
    out_dir, summaries: dict[str, dict], metric: str = PRIMARY
) -> dict[str, dict[str, dict[int, float]]]:
    """``{condition: {arm: {seed: metric}}}`` from a study folder's summaries and curves."""
    curves = read_curves(out_dir, summaries)
    out: dict[str, dict[str, dict[int, float]]] = {}
    for key, s in summaries.items():
        q = run_quantities(s, curves[key], None)
        out.setdefault(s["condition"], {}).setdefault(s["arm"], {})[s["seed"]] = q[metric]
    return out


def contrasts(
    values: dict[str, dict[str, dict[int, float]]],
    tested: Sequence[str],
    references: Sequence[str] = ("grpo",),
    ceiling: str = "oracle",
    min_share: float = 0.7,
) -> dict:
    """Every tested arm against every reference arm in every condition (paired by seed), the share of the
    ceiling's mean gain over the first reference, and Holm's adjustment over the tests against that first
    reference. Returns ``{"conditions": {cond: {arm: {ref: paired, "share_of_ceiling": x, "share_ci": [lo, hi],
    "claim": bool}}}}``; ``share_ci`` is Fieller's 95% interval of the share (NaN when the ceiling's own gain is
    not clear of 0: :func:`oarl.lab.testbed.stats.share_interval`).
    """
    base = references[0]
    out: dict = {"tested": list(tested), "references": list(references), "ceiling": ceiling,
                 "min_share": min_share, "conditions": {}}  # fmt: skip
    family: list[tuple[str, str, float]] = []
    for cond, arms in values.items():
        if base not in arms:
            continue
        ceiling_gain = paired(arms[ceiling], arms[base]).diff.mean if ceiling in arms else math.nan
        rows: dict = {}
        for arm in tested:
            if arm not in arms:
                continue
            row: dict = {ref: paired(arms[arm], arms[ref]).as_dict() for ref in references if ref in arms}
            gain = row[base]["diff"]["mean"]
            row["share_of_ceiling"] = (
                gain / ceiling_gain if ceiling_gain and math.isfinite(ceiling_gain) else math.nan
            )
            share = share_interval(arms[arm], arms[ceiling], arms[base]) if ceiling in arms else None
            row["share_ci"] = [math.nan, math.nan] if share is None else [share.lo, share.hi]
            rows[arm] = row
            family.append((cond, arm, row[base]["p_t"]))
        out["conditions"][cond] = {"ceiling_gain": ceiling_gain, "arms": rows}
    for (cond, arm, _), p in zip(family, holm([p for *_, p in family]), strict=True):
        row = out["conditions"][cond]["arms"][arm]
        row["p_holm"] = p
        row["claim"] = bool(row[base]["diff"]["lo"] > 0 and p < 0.05 and row["share_of_ceiling"] >= min_share)
    return out


def share_text(row: dict) -> str:
    """``85% [60%, 110%]``: the share of the ceiling's gain and its interval (``unbounded`` when it has none)."""
    lo, hi = row.get("share_ci", [math.nan, math.nan])
    bounds = f"[{lo:.0%}, {hi:.0%}]" if math.isfinite(lo) and math.isfinite(hi) else "[unbounded]"
    return f"{row['share_of_ceiling']:.0%} {bounds}"


def markdown(result: dict, labels: dict[str, str] | None = None) -> str:
    """One table per condition: Δ vs each reference [95% CI], d_z, wins, the share of the ceiling, Holm p."""
    labels = labels or {}
    refs, base = result["references"], result["references"][0]
    lines = []
    for cond, c in result["conditions"].items():
        lines += [f"**{cond}** ({result['ceiling']} − {base}: {c['ceiling_gain']:+.3f} AUC)", ""]
        head = ["arm"] + [f"Δ AUC vs {r} [95% CI], d_z, wins" for r in refs]
        head += [f"share of {result['ceiling']}'s gain [95% CI]", "p (t, Holm)", "claim"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for arm, row in c["arms"].items():
            cells = [labels.get(arm, arm)]
            for r in refs:
                p = row.get(r)
                cells.append(
                    "-" if p is None else
                    f"{p['diff']['mean']:+.3f} [{p['diff']['lo']:+.3f}, {p['diff']['hi']:+.3f}], "
                    f"{p['d_z']:+.2f}, {p['wins']}/{p['n']}"
                )  # fmt: skip
            cells += [
                share_text(row),
                f"{row['p_holm']:.3f}",
                "yes" if row["claim"] else "no",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_contrasts(
    out_dir: str | Path,
    values: dict[str, dict[str, dict[int, float]]],
    tested: Sequence[str],
    references: Sequence[str],
    labels: dict[str, str] | None = None,
    extra: dict | None = None,
) -> str:
    """:func:`contrasts` into ``out_dir/contrasts.json`` (plus ``extra``) and its :func:`markdown` into
    ``out_dir/contrasts.md``; returns the markdown."""
    result = {**contrasts(values, tested, references), **(extra or {})}
    text = markdown(result, labels)
    atomic_write_json(Path(out_dir) / "contrasts.json", result, indent=1)
    atomic_write_text(Path(out_dir) / "contrasts.md", text)
    return text
