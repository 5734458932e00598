"""Per-prompt pass rates from ``oarl eval`` generations, with Wilson intervals.

``oarl eval --n K`` writes one ``generations.jsonl`` line per sample (``row``, ``correct``, ``answer``). For RL
what matters is not only the mean but how the per-prompt pass rates spread: a group whose prompt always or
never succeeds has zero reward variance and gives GRPO nothing. ``python -m oarl.lab.math.pass_rates GEN.jsonl
--out FILE.json`` summarizes that spread (histogram, the share of prompts inside ``[lo, hi]``) next to the
overall accuracy with a Wilson 95% interval (right for proportions near 0 or 1, where the normal one is not).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from oarl.utils.atomic import atomic_write_json


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (``z`` = 1.96: 95%); ``(0, 1)`` when ``n`` is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize_pass_rates(rows: list[dict], lo: float = 0.1, hi: float = 0.9) -> dict:
    """Overall accuracy (Wilson CI), answer-found rate, per-prompt pass rates and their spread."""
    by_row: dict[int, list[bool]] = defaultdict(list)
    found = 0
    for r in rows:
        by_row[int(r["row"])].append(bool(r["correct"]))
        found += r.get("answer") is not None
    if not by_row:
        raise ValueError("no generations to summarize")
    rates = [sum(v) / len(v) for _, v in sorted(by_row.items())]
    total, correct = len(rows), sum(bool(r["correct"]) for r in rows)
    edges = [0.0, 1e-9, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0 - 1e-9, 1.0]
    names = ["0", "(0,0.1)", "[0.1,0.3)", "[0.3,0.5)", "[0.5,0.7)", "[0.7,0.9)", "[0.9,1)", "1"]
    hist = dict.fromkeys(names, 0)
    for p in rates:
        i = next(j for j in range(len(edges) - 1, -1, -1) if p >= edges[j])
        hist[names[min(i, len(names) - 1)]] += 1
    return {
        "samples": total, "prompts": len(rates), "samples_per_prompt": total / len(rates),
        "accuracy": correct / total, "accuracy_wilson95": list(wilson(correct, total)),
        "answer_found": found / total,
        "prompts_in_range": sum(lo <= p <= hi for p in rates), "range": [lo, hi],
        "prompts_with_variance": sum(0 < p < 1 for p in rates),
        "pass_rate_histogram": hist, "pass_rates": rates,
    }  # fmt: skip


def read_generations(path: str | Path) -> list[dict]:
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m oarl.lab.math.pass_rates", description=__doc__.splitlines()[0]
    )
    ap.add_argument("generations", help="generations.jsonl written by oarl eval")
    ap.add_argument("--out", help="write the summary JSON here (atomic)")
    ap.add_argument("--meta", default="{}", help="JSON object merged into the output (command, machine)")
    ap.add_argument("--range", type=float, nargs=2, default=(0.1, 0.9), metavar=("LO", "HI"))
    args = ap.parse_args(argv)
    out = {**json.loads(args.meta), **summarize_pass_rates(read_generations(args.generations), *args.range)}
    text = {k: v for k, v in out.items() if k != "pass_rates"}
    print(json.dumps(text, indent=1))
    if args.out:
        atomic_write_json(args.out, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
