"""The README's table of credit families x testbeds, from the committed study folders and role-weight JSON.

One row per trained scorer (grouped by family), and for each testbed: ΔAUC of held-out sampled accuracy vs
GRPO on the same seeds (paired, 95% t interval, seeds ahead), the share of the oracle's gain on those seeds
(with Fieller's 95% interval where every run's curve is kept; ``-`` where only the study's summary survives),
and the scorer's time beside one GRPO forward + backward on the warm model's rows (one thread, taken beside
other jobs; ``docs/families.md``). Families that no study trained are listed with the reason.

    python benchmarks/families_testbeds.py              # print the table
    python benchmarks/families_testbeds.py --write README.md   # replace the table between its markers

Each testbed's numbers come from the folders in :data:`TESTBEDS` (a study folder with ``results.json`` and
``summaries.jsonl``, or a pooled JSON written by ``benchmarks/pool_study_seeds.py``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from oarl.core.scorers import SCORERS
from oarl.lab.testbed.contrasts import per_seed
from oarl.lab.testbed.experiment import get_arm
from oarl.lab.testbed.stats import share_interval
from oarl.lab.testbed.study import finished

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- families-testbeds:begin -->", "<!-- families-testbeds:end -->"

#: Testbed -> (its label, the study folders that trained its arms, the role-weight JSON and level for cost).
TESTBEDS = {
    "flag": (
        "flag (~1M parameters, heavy chatter, 4 x 8 rows a step, 60 steps)",
        ["docs/credit_study/b", "docs/credit_study/b_families", "docs/credit_study/b_anchor_rep"],
        ("docs/families/role_weights_flag.json", "heavy"),
    ),
    "SmolLM2": (
        "SmolLM2-135M + LoRA on `wordop` (4 x 4 rows a step, 15 steps)",
        ["docs/real_lm_study/five_seeds.json"],
        ("docs/families/role_weights_wordop.json", "wordop"),
    ),
    "SmolLM2, heavy chatter": (
        "SmolLM2-135M + LoRA on `wordop` with heavy chatter (4 x 8 rows a step, 64 tokens, 15 steps; a setting "
        "chosen by exploration after the regime pilot's rule found none)",
        ["docs/real_lm_families/study"],
        ("docs/families/role_weights_wordop_heavy.json", "wordop_heavy"),
    ),
}

#: Registered families that no study trains, with the reason (shown under the table).
NOT_TRAINED = {
    "resample": "resampling (VinePPO): 19-23x a GRPO step on the flag testbed and ~8x on SmolLM2 with heavy "
    "chatter (per step), too slow for 5 seeds on 2 cores",
    "hicra": "planning (HICRA): its strategic grams are English phrases these completions never contain, so it "
    "is GRPO exactly",
    "cdpo": "contrastive (cDPO): needs two models tuned on correct and on wrong rollouts, which no testbed trains",
}


def study_rows(folder: Path) -> dict[str, dict]:
    """``{arm: {"diff", "wins", "seeds", "share", "share_ci"}}`` of one study folder (one condition)."""
    if folder.suffix == ".json":  # a pooled summary: already in this shape
        return json.loads(folder.read_text())["arms"]
    res = json.loads((folder / "results.json").read_text())
    (cond,) = res["conditions"]
    c = res["conditions"][cond]
    values = per_seed(folder, finished(folder)).get(cond, {})
    complete = all(not math.isnan(v) for arm in values.values() for v in arm.values()) and values
    oracle = c["paired"].get("oracle", {}).get("auc_sampled", {}).get("diff", {}).get("mean", math.nan)
    out = {}
    for arm, p in c["paired"].items():
        q = p["auc_sampled"]
        row = {
            "diff": q["diff"],
            "wins": q["wins"],
            "seeds": c["arms"][arm]["seeds"],
            "share": q["diff"]["mean"] / oracle if oracle else math.nan,
            "share_ci": [math.nan, math.nan],
        }
        if complete and arm != "oracle" and "oracle" in values:
            iv = share_interval(values[arm], values["oracle"], values["grpo"])
            row["share_ci"] = [iv.lo, iv.hi]
        out[arm] = row
    return out


def cost(path: str, level: str) -> dict[str, float]:
    """``{scorer: x GRPO step}`` from a role-weight JSON (``benchmarks/role_weights_credit.py``)."""
    data = json.loads((ROOT / path).read_text())[level]["scorers"]
    return {k: v["x_grpo_step"] for k, v in data.items() if "x_grpo_step" in v}


def seeds_text(seeds: list[int]) -> str:
    s = sorted(seeds)
    return f"{s[0]}-{s[-1]}" if s == list(range(s[0], s[-1] + 1)) else ",".join(map(str, s))


def cells(rows: list[dict], cost_x: float | None) -> list[str]:
    """The ΔAUC, share and cost cells of one scorer on one testbed; a scorer run on several seed sets (the
    oracle, a replication) gets one line per set, with its seeds."""
    cost_text = "" if cost_x is None else f"{cost_x:.2f}x"
    if not rows:
        return ["not run", "", cost_text]
    deltas, shares = [], []
    for row in sorted(rows, key=lambda r: min(r["seeds"])):
        d = row["diff"]
        seeds = f" (seeds {seeds_text(row['seeds'])})" if len(rows) > 1 else ""
        deltas.append(f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] {row['wins']}/{d['n']}{seeds}")
        lo, hi = row["share_ci"]
        share = "-" if math.isnan(row["share"]) else f"{row['share']:.0%}"
        if math.isfinite(lo) and math.isfinite(hi):
            share += f" [{lo:.0%}, {hi:.0%}]"
        shares.append(share)
    return ["<br>".join(deltas), "<br>".join(shares), cost_text]


def table() -> str:
    """The markdown table, its legend and the families left out."""
    beds = {}
    for name, (label, folders, (cost_json, level)) in TESTBEDS.items():
        rows: dict[str, list[dict]] = {}
        for f in folders:
            found = study_rows(ROOT / f)
            control = found.get("oracle", {}).get("diff", {})
            for arm, row in found.items():
                if not control.get("lo", math.nan) > 0:  # no share of a gain that is not there
                    row = {**row, "share": math.nan, "share_ci": [math.nan, math.nan]}
                rows.setdefault(arm, []).append({**row, "source": f})
        beds[name] = (label, rows, cost(cost_json, level))
    arms: list[str] = []
    for _, rows, _ in beds.values():
        arms += [a for a in rows if a not in arms]
    arms.sort(key=lambda a: (a != "oracle", SCORERS[get_arm(a).oar_method].family, a))
    head = ["family", "scorer"]
    for name in beds:
        head += [f"{name}: ΔAUC vs GRPO [95% CI], seeds ahead", f"{name}: share of the oracle's gain", "cost"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in arms:
        arm = get_arm(key)
        method = arm.oar_method
        line = [SCORERS[method].family, f"`{method}`" + (f" ({arm.label})" if arm.name != method else "")]
        for _, rows, costs in beds.values():
            line += cells(rows.get(key, []), costs.get(arm.role_name))
        lines.append("| " + " | ".join(line) + " |")
    sources = []
    for name, (label, rows, _) in beds.items():
        by_source: dict[str, set[int]] = {}
        for r in (r for arm_rows in rows.values() for r in arm_rows):
            by_source.setdefault(r["source"], set()).update(r["seeds"])
        links = "; ".join(
            f"[{Path(s).name}]({s}) (seeds {seeds_text(sorted(v))})" for s, v in by_source.items()
        )
        sources.append(f"**{name}**: {label}; {links}")
    lines += [
        "",
        "ΔAUC: held-out sampled accuracy's AUC minus GRPO's on the same seeds (95% t interval; seeds ahead of GRPO). "
        "Share: of the oracle's gain on the same seeds, with Fieller's 95% interval where every run's curve is "
        "kept; `-` where the oracle's own interval is not above 0 (a share of a gain that may be 0 means nothing). Cost: the scorer's time over one GRPO forward + backward of the warm model on the same rows (one "
        "thread, taken beside other jobs; [families](docs/families.md)). " + " ".join(sources) + ".",
    ]
    # a family leaves this list once a study trains it
    untrained = {k: v for k, v in NOT_TRAINED.items() if k not in arms}
    if untrained:
        lines += ["Not trained: " + "; ".join(f"`{k}`, {v}" for k, v in untrained.items()) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="a markdown file whose table between the markers is replaced")
    a = ap.parse_args()
    text = table()
    if a.write is None:
        print(text)
        return
    doc = a.write.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{a.write}: no {BEGIN} ... {END} markers to write between")
    before, rest = doc.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    a.write.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}", encoding="utf-8")
    print(f"wrote the table into {a.write}")


if __name__ == "__main__":
    main()
