"""Summarise ``oarl train`` runs side by side: reward, entropy and step-time curves, step-time ratios.

``python -m oarl.lab.math.rl_summary RUNS_DIR --out FILE.json`` reads ``RUNS_DIR/<arm>/metrics.jsonl`` for every
arm folder and writes one JSON: per arm the logged steps (reward, its std, entropy, step seconds, OAR's
scored share) and the median step time; per arm its ratio to the ``grpo`` arm's median (TRL's step time
covers generation, rewards, OAR scoring and the update, so the ratio is the real overhead per step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from oarl.utils.atomic import atomic_write_json

KEYS = ("reward", "reward_std", "entropy", "step_time", "loss", "oar/scored_frac", "oar/no_span_frac",
        "completions/mean_length", "frac_reward_zero_std")  # fmt: skip


def arm_summary(metrics: Path) -> dict:
    """One arm's logged steps (the last line of each step wins: a resumed run may repeat none, but be safe)."""
    steps: dict[int, dict] = {}
    with metrics.open() as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                if "step" in rec and "loss" in rec:
                    steps[int(rec["step"])] = {k: rec[k] for k in KEYS if k in rec}
    if not steps:
        raise ValueError(f"{metrics}: no logged training steps")
    times = [s["step_time"] for s in steps.values() if "step_time" in s]
    return {
        "steps": [{"step": k, **v} for k, v in sorted(steps.items())],
        "median_step_seconds": statistics.median(times) if times else None,
        "mean_reward": statistics.fmean(s["reward"] for s in steps.values() if "reward" in s),
    }


def summarize_runs(runs: Path) -> dict:
    arms = {
        p.name: arm_summary(p / "metrics.jsonl")
        for p in sorted(runs.iterdir())
        if (p / "metrics.jsonl").is_file()
    }
    if not arms:
        raise ValueError(f"{runs}: no <arm>/metrics.jsonl")
    base = arms.get("grpo", {}).get("median_step_seconds")
    for a in arms.values():
        t = a["median_step_seconds"]
        a["step_time_ratio_to_grpo"] = t / base if base and t else None
    return {"arms": arms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m oarl.lab.math.rl_summary", description=__doc__.splitlines()[0]
    )
    ap.add_argument("runs", help="folder holding one folder per arm")
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", default="{}", help="JSON object merged into the output (command, machine)")
    args = ap.parse_args(argv)
    out = {**json.loads(args.meta), **summarize_runs(Path(args.runs))}
    atomic_write_json(args.out, out, indent=1)
    for name, a in out["arms"].items():
        ratio = a["step_time_ratio_to_grpo"]
        print(f"{name:8s} steps {len(a['steps'])}  median step {a['median_step_seconds']:.1f} s  "
              f"ratio {'–' if ratio is None else f'{ratio:.2f}'}  mean reward {a['mean_reward']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
