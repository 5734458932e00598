"""A powered comparison of credit-assignment arms on a testbed task: seeds x arms x conditions, in parallel.

    oarl study --vary chatter=none,some,heavy --seeds 0-4 --out runs/study/main      # the main study
    oarl study --vary chatter=heavy --arms oar_p --sweep tau=0.2,0.4,0.6,0.8 beta=1,2,4 --seeds 0-2 \\
        --out runs/study/sweep                                                          # the gate sweep

Conditions are the product of ``--vary`` (a field of the task config; each value gets its own warm start)
and ``--sweep`` (fields of the RL settings). Every arm runs every seed of every condition with the same
budget and learning rate. Writes ``OUT/{config.yaml, summaries.jsonl, runs/*.jsonl, results.json,
curves.png, entropy.png, gaps.png[, sweep.png], table.md}``; run the same command again to resume.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

DEFAULT_ARMS = "grpo,oar_g,oar_p,entropy,trl_entropy,random,oracle"


def _value(text: str):
    if text in ("None", "none", "null") and text != "none":
        return None
    if text in ("true", "True", "false", "False"):
        return text in ("true", "True")
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _assignments(items: list[str]) -> list[tuple[str, list]]:
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"expected FIELD=v1,v2,..., got {item!r}")
        out.append((key, [_value(v) for v in values.split(",")]))
    return out


def _names(text: str) -> list[str]:
    """A comma list of names, blanks dropped."""
    return [a.strip() for a in text.split(",") if a.strip()]


def _seeds(text: str) -> list[int]:
    if "-" in text and "," not in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    from oarl.testbed.experiment import RLSettings
    from oarl.utils.threads import THREADS_HELP

    rl = RLSettings()
    p = argparse.ArgumentParser(prog="oarl study", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument(
        "--task", default="flag", help="testbed task (flag, arith, wordop: SmolLM2 + its LoRA warm start)"
    )
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="task config fields")
    p.add_argument("--vary", nargs="*", default=[], metavar="FIELD=V1,V2", help="task fields to vary")
    p.add_argument("--sweep", nargs="*", default=[], metavar="FIELD=V1,V2", help="RL settings to sweep")
    p.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma list (default {DEFAULT_ARMS})")
    p.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,3,7")
    p.add_argument("--steps", type=int, default=None, help="RL steps (default: the task's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of every arm (default: the task's)")
    p.add_argument(
        "--prompts-per-step", type=int, default=None, help=f"default: the task's ({rl.prompts_per_step} flag)"
    )
    p.add_argument(
        "--generations", type=int, default=None, help=f"default: the task's ({rl.num_generations} flag)"
    )
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--eval-problems", type=int, default=128)
    p.add_argument("--eval-samples", type=int, default=4)
    p.add_argument("--noise-std", type=float, default=None, help="OAR-G noise (default: the task's)")
    p.add_argument("--sft-steps", type=int, default=None, help="warm-start SFT steps (default: the task's)")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (processes)")
    p.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="cuda: every run trains on the GPU (a 135M model: many --workers share one; docs/gpu.md)",
    )
    p.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    p.add_argument("--cache-dir", default="runs/cache")
    p.add_argument("--out", default=None, help="default runs/study/<time>")
    p.add_argument("--report-only", action="store_true", help="recompute results and figures, run nothing")
    p.add_argument(
        "--contrasts",
        default=None,
        metavar="ARMS",
        help="pre-registered tests: these arms against each --contrast-refs arm, paired, with the share "
        "of the oracle's gain and Holm's adjustment (writes contrasts.json, contrasts.md)",
    )
    p.add_argument(
        "--contrast-refs",
        default="grpo",
        metavar="ARMS",
        help="reference arms of --contrasts; the first is the baseline of the claim (default grpo)",
    )
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as e:
        print(f"oarl study: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import yaml

    from oarl.testbed.experiment import get_arm
    from oarl.testbed.report import summarize
    from oarl.testbed.study import Condition, StudyPlan, run_study
    from oarl.testbed.tasks import get_task_recipe
    from oarl.utils.atomic import atomic_write_json, atomic_write_text

    recipe = get_task_recipe(args.task)
    arms, tested, refs = _names(args.arms), _names(args.contrasts or ""), _names(args.contrast_refs)
    for a in arms + tested + refs:
        get_arm(a)  # fails early on a typo
    if tested and not set(tested + refs) <= set(arms):
        raise ValueError(
            f"--contrasts/--contrast-refs: {sorted(set(tested + refs) - set(arms))} not in --arms"
        )
    config = replace(recipe.config, **dict((k, _value(v)) for k, v in (s.split("=", 1) for s in args.set)))
    valid = {f.name for f in fields(config)}
    vary, sweep = _assignments(args.vary), _assignments(args.sweep)
    for key, _ in vary:
        if key not in valid:
            raise ValueError(f"--vary {key}: not a field of the {args.task} task ({sorted(valid)})")
    rl = recipe.rl
    rl_valid = {f.name for f in fields(rl)}
    for key, _ in sweep:
        if key not in rl_valid:
            raise ValueError(f"--sweep {key}: not an RL setting ({sorted(rl_valid)})")
    overrides = {"steps": args.steps, "learning_rate": args.lr, "eval_every": args.eval_every,
                 "noise_std": args.noise_std, "prompts_per_step": args.prompts_per_step,
                 "num_generations": args.generations}  # fmt: skip
    rl = replace(
        rl,
        eval_samples=args.eval_samples,
        device=args.device,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    ws = recipe.warm_start if args.sft_steps is None else recipe.with_sft_steps(args.sft_steps)
    out = Path(args.out or f"runs/study/{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)

    conditions, checkpoints = [], {}
    task_variants = [dict(zip([k for k, _ in vary], vals, strict=True))
                     for vals in itertools.product(*[v for _, v in vary])] or [{}]  # fmt: skip
    rl_variants = [dict(zip([k for k, _ in sweep], vals, strict=True))
                   for vals in itertools.product(*[v for _, v in sweep])] or [{}]  # fmt: skip
    for tv in task_variants:
        task = recipe.make(replace(config, **tv))
        ckpt = None if args.report_only else recipe.checkpoint(task, ws, args.cache_dir, threads=args.threads)
        for rv in rl_variants:
            name = ",".join(
                f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}" for k, v in {**tv, **rv}.items()
            )
            name = name or args.task
            conditions.append(Condition(name, task, tuple(rv.items())))
            checkpoints[name] = ckpt
    plan = StudyPlan(conditions, arms, _seeds(args.seeds), rl, args.eval_problems, checkpoints)
    # A report leaves the config alone: it describes the runs that made the data (their command, checkpoints).
    if not (args.report_only and (out / "config.yaml").exists()):
        atomic_write_text(out / "config.yaml", yaml.safe_dump({
            "command": "oarl study " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["study"] else sys.argv[1:]),
            "task": args.task, "task_config": asdict(config), "vary": dict(vary), "sweep": dict(sweep), "arms": arms,
            "seeds": plan.seeds, "rl": asdict(rl), "warm_start": asdict(ws), "checkpoints": checkpoints,
            "eval_problems": args.eval_problems, "workers": args.workers, "threads": args.threads,
        }, sort_keys=False))  # fmt: skip
    if not args.report_only:
        from oarl.utils.threads import set_threads

        set_threads(args.threads)  # --workers 1 runs in this process: --threads holds here too
        run_study(plan, out, workers=args.workers, threads_per_worker=args.threads)
    done = plan.finished_in(out)
    results = summarize(out, done)
    results["config"] = yaml.safe_load((out / "config.yaml").read_text())
    atomic_write_json(out / "results.json", results, indent=1)
    _figures(results, out, sweep)
    table = markdown_table(results)
    atomic_write_text(out / "table.md", table)
    print(table)
    if tested:
        from oarl.testbed.contrasts import per_seed, write_contrasts

        print(write_contrasts(out, per_seed(out, done), tested, refs, {a: get_arm(a).label for a in tested}))
    print(
        f"wrote {out}/ (results.json, table.md, curves.png, entropy.png{', sweep.png' if sweep else ''}"
        f"{', contrasts.json, contrasts.md' if tested else ''})"
    )
    return 0


def _figures(results: dict, out: Path, sweep) -> None:
    from oarl.viz.study import gap_plot, learning_curves, role_entropy_curves, sweep_heatmaps

    if not results["conditions"]:
        return
    learning_curves(results, out / "curves.png", ylabel="held-out accuracy (sampled)")
    role_entropy_curves(results, out / "entropy.png")
    if any(c["paired"] for c in results["conditions"].values()) and not sweep:
        gap_plot(results, out / "gaps.png")
    grid = dict(sweep)
    if {"tau", "beta"} <= grid.keys():
        panels = (("final_sampled", "final sampled accuracy"), ("policy_entropy", "policy entropy (mean over steps)"),
                  ("ess_ratio", "ESS-ratio (mean over steps)"))  # fmt: skip
        sweep_heatmaps(results, out / "sweep.png", grid["tau"], grid["beta"], panels)


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
        lines += [f"**{cond}** (GRPO's mean gain in sampled accuracy: {c['baseline_gain'] if c['baseline_gain'] is not None else float('nan'):.3f})", "",
                  "| arm | n | final sampled | final greedy | AUC sampled | Δ AUC vs GRPO [95% CI], p (t / Wilcoxon), d_z "
                  "| steps to 80% of GRPO gain | H chatter | H causal | ESS |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for arm, a in c["arms"].items():
            pr = c["paired"].get(arm, {}).get("auc_sampled")
            if not pr:
                delta = "-"
            elif math.isfinite(pr["diff"]["lo"]):
                delta = (f"{pr['diff']['mean']:+.3f} [{pr['diff']['lo']:+.3f}, {pr['diff']['hi']:+.3f}], "
                         f"p {pr['p_t']:.3f} / {pr['p_wilcoxon']:.3f}, d_z {pr['d_z']:+.2f}")  # fmt: skip
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
