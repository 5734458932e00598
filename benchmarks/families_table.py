"""Markdown tables of where each credit family puts its weight, from ``role_weights_credit.py``'s JSON.

One table per level of the JSON (the flag task's ``heavy`` / ``some`` / ``none``, or ``wordop``): the scorer, its
family, the mean gated weight per token role (1.0 = uniform; ``-``: the role has no tokens at that level),
decision recall@k, the scorer's time over a GRPO forward + backward on the same rows, and what it credits. A
scorer the run skipped prints its reason; a ``note`` (how its second model was chosen) is a footnote.

    python benchmarks/families_table.py docs/families/role_weights_flag.json --level heavy
    python benchmarks/families_table.py docs/families/role_weights_wordop.json --level wordop
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oarl.core.scorers import SCORERS

ROLES = ("decision", "causal", "distractor", "chatter", "format")

#: One line per scorer: what it credits (``docs/scorers.md`` has the definitions).
CREDITS = {
    "perturbation": "the outcome probe's shift when the token is masked (OAR-P)",
    "gradient": "the probe's gradient x embedding under noise (OAR-G)",
    "perturbation_linear": "OAR-P with the indirect paths linearised",
    "entropy": "the policy's entropy at the token (control)",
    "random": "a random score (control)",
    "oracle": "the known decision tokens (ceiling)",
    "tree": "the change of the group's mean reward when the shared prefix grows by the token (TEMPO)",
    "ktae": "the token type's key-token value in its group (KTAE)",
    "info_gain": "the gain in log p(own answer) from the token (IGPO)",
    "resample": "the change of the Monte-Carlo value of the prefix (VinePPO), k continuations",
    "resample_step": "as resample, at the end of each `;` step",
    "gtpo": "the token's share of its position's entropy among same-outcome rows (1/H for wrong rows)",
    "high_entropy": "only the top-20% entropy tokens (weight 1, the rest 0)",
    "stare": "the top-10% surprisal tokens of positive rows boosted (W = 1.1)",
    "prime": "the implicit process reward beta log(pi / pi_ref), aligned with the advantage",
    "cdpo": "the contrast of a positive and a negative model: p in correct rows, 1 - p in wrong ones",
    "hicra": "planning tokens (English strategic grams): 1 + alpha sign(A)",
    "anchor": "the attention a token receives from later tokens (FAI anchors)",
}


def fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def table(level: dict) -> str:
    """The markdown table (and its footnotes) of one level of the JSON."""
    head = "| scorer | family | " + " | ".join(ROLES) + " | recall@k | x GRPO step | credits |"
    lines = [head, "|" + "---|" * (len(ROLES) + 5)]
    notes = []
    for name, s in level["scorers"].items():
        family = SCORERS["resample" if name == "resample_step" else name].family
        if "skipped" in s:
            lines.append(f"| `{name}` | {family} |" + " |" * len(ROLES) + f" | | {s['skipped']} |")
            continue
        mark = ""
        if "note" in s:
            if s["note"] not in notes:
                notes.append(s["note"])
            mark = f" [{notes.index(s['note']) + 1}]"
        w = s["weights"]
        rows = f" ({s['rows']} rows)" if s["rows"] != level["rows"] else ""
        lines.append(
            f"| `{name}`{mark} | {family} | "
            + " | ".join(fmt(w.get(r)) for r in ROLES)
            + f" | {s['decision_recall']:.2f} | {s['x_grpo_step']:.2f}{rows} | {CREDITS.get(name, '')} |"
        )
    lines += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--level", required=True, help="a level of the JSON: heavy, some, none or wordop")
    a = ap.parse_args()
    data = json.loads(a.json.read_text(encoding="utf-8"))
    if a.level not in data:
        ap.error(f"level {a.level!r} is not in {a.json}; it has {sorted(data)}")
    print(table(data[a.level]))


if __name__ == "__main__":
    main()
