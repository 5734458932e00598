"""A powered comparison of credit-assignment arms on a testbed task: seeds x arms x conditions, in parallel.

    oarl study --vary chatter=none,some,heavy --seeds 0-4 --out runs/study/main      # the main study
    oarl study --vary chatter=heavy --arms oar_p --sweep tau=0.2,0.4,0.6,0.8 beta=1,2,4 --seeds 0-2 \\
        --out runs/study/sweep                                                          # the gate sweep

Conditions are the product of ``--vary`` (a field of the task config; each value gets its own warm start)
and ``--sweep`` (RL settings: a field of RLSettings such as ``prompts_per_step``, or an OAR setting by its path
``oar.tau`` or its flat name ``tau``; any other name is an error). Every arm runs every seed of every condition with the same
budget and learning rate. Writes ``OUT/{config.yaml, summaries.jsonl, runs/*.jsonl, results.json,
curves.png, entropy.png, gaps.png[, sweep.png], table.md[, contrasts.json/md, paired.png]}``; run the same
command again to resume.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

from oarl.cli._args import assignments, names, run_main, seeds, settings

#: What Ctrl-C outside a clean stop point leaves, and how to go on (printed by ``oarl``; see
#: :func:`oarl.utils.interrupt.interrupted_message`).
RESUME_HINT = "finished runs are kept; resume with: {command}"


DEFAULT_ARMS = "grpo,oar_g,oar_p,entropy,trl_entropy,random,oracle"


def build_parser() -> argparse.ArgumentParser:
    from oarl.lab.testbed.settings import RLSettings
    from oarl.lab.testbed.tasks import TASKS, tasks_help
    from oarl.utils.threads import THREADS_HELP

    rl = RLSettings()
    p = argparse.ArgumentParser(
        prog="oarl study",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--task", default="flag", choices=list(TASKS), help=f"testbed task ({tasks_help()})")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="task config fields")
    p.add_argument("--vary", nargs="*", default=[], metavar="FIELD=V1,V2", help="task fields to vary")
    p.add_argument(
        "--sweep",
        nargs="*",
        default=[],
        metavar="FIELD=V1,V2",
        help="RL settings to sweep (steps, oar.tau or tau, ...)",
    )
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
    return run_main("study", run, build_parser().parse_args(argv), errors=(ValueError,))


def run(args: argparse.Namespace) -> int:
    import yaml

    from oarl.core.scorers import SCORERS
    from oarl.integrations.trl.trainer import check_needs
    from oarl.lab.testbed.experiment import get_arm
    from oarl.lab.testbed.report import markdown_table, summarize
    from oarl.lab.testbed.settings import canonical_key, with_overrides
    from oarl.lab.testbed.study import StudyPlan, condition_grid, run_study
    from oarl.lab.testbed.tasks import get_task_recipe
    from oarl.utils.atomic import atomic_write_json, atomic_write_text

    if args.device == "cuda" and not args.report_only:
        import torch

        # refused here: TRL would refuse it only after the warm start's minutes, and in its own words
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device cuda, but this torch ({torch.__version__}) sees no CUDA GPU: run it on the GPU "
                "machine with a CUDA build of torch (docs/gpu.md), or leave --device at cpu"
            )
    recipe = get_task_recipe(args.task)
    arms, tested, refs = names(args.arms), names(args.contrasts), names(args.contrast_refs)
    for a in arms + tested + refs:
        get_arm(a)  # fails early on a typo
    for a in arms:  # and on a scorer the runner cannot feed, before minutes of loading and warm starts
        method = get_arm(a).oar_method
        try:
            check_needs(method, SCORERS[method].needs, has_reference=True, has_contrast=False)
        except ValueError as e:
            raise ValueError(
                f"arm {a!r} cannot run in oarl study: {e}; the study's runner provides none"
            ) from None
    if tested and not set(tested + refs) <= set(arms):
        raise ValueError(
            f"--contrasts/--contrast-refs: {sorted(set(tested + refs) - set(arms))} not in --arms"
        )
    config = replace(recipe.config, **settings(args.set))
    valid = {f.name for f in fields(config)}
    vary, sweep = assignments(args.vary), assignments(args.sweep)
    for key, _ in vary:
        if key not in valid:
            raise ValueError(f"--vary {key}: not a field of the {args.task} task ({sorted(valid)})")
    try:  # flat names (tau) and paths (oar.tau) are recorded by their flat name, as earlier studies were
        sweep = [(canonical_key(key), values) for key, values in sweep]
    except ValueError as e:
        raise ValueError(f"--sweep {e}") from None
    overrides = {
        "steps": args.steps,
        "learning_rate": args.lr,
        "eval_every": args.eval_every,
        "noise_std": args.noise_std,
        "prompts_per_step": args.prompts_per_step,
        "num_generations": args.generations,
    }
    rl = with_overrides(
        recipe.rl,
        {
            "eval_samples": args.eval_samples,
            "device": args.device,
            **{k: v for k, v in overrides.items() if v is not None},
        },
    )
    ws = recipe.warm_start if args.sft_steps is None else recipe.with_sft_steps(args.sft_steps)
    out = Path(args.out or f"runs/study/{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)

    conditions, checkpoints = [], {}
    for task_fields, cells in condition_grid(vary, sweep, default_name=args.task):
        task = recipe.make(replace(config, **task_fields))
        ckpt = None if args.report_only else recipe.checkpoint(task, ws, args.cache_dir, threads=args.threads)
        for cell in cells:
            conditions.append(replace(cell, task=task))
            checkpoints[cell.name] = ckpt
    plan = StudyPlan(conditions, arms, seeds(args.seeds), rl, args.eval_problems, checkpoints)
    # A report leaves the config alone: it describes the runs that made the data (their command, checkpoints).
    if not (args.report_only and (out / "config.yaml").exists()):
        atomic_write_text(
            out / "config.yaml",
            yaml.safe_dump(
                {
                    "command": "oarl study "
                    + " ".join(sys.argv[2:] if sys.argv[1:2] == ["study"] else sys.argv[1:]),
                    "task": args.task,
                    "task_config": asdict(config),
                    "vary": dict(vary),
                    "sweep": dict(sweep),
                    "arms": arms,
                    "seeds": plan.seeds,
                    "rl": asdict(rl),
                    "warm_start": asdict(ws),
                    "checkpoints": checkpoints,
                    "eval_problems": args.eval_problems,
                    "workers": args.workers,
                    "threads": args.threads,
                },
                sort_keys=False,
            ),
        )
    if not args.report_only:
        from oarl.utils.threads import set_threads

        set_threads(args.threads)  # --workers 1 runs in this process: --threads holds here too
        run_study(plan, out, workers=args.workers, threads_per_worker=args.threads)
    done = plan.finished_in(out)
    results = summarize(out, done)
    results["config"] = yaml.safe_load((out / "config.yaml").read_text())
    atomic_write_json(out / "results.json", results, indent=1)
    written = ["results.json", "table.md", *_figures(results, out, sweep)]
    table = markdown_table(results)
    atomic_write_text(out / "table.md", table)
    print(table)
    if tested:
        from oarl.lab.testbed.contrasts import per_seed, write_contrasts
        from oarl.lab.viz.study import paired_seeds_plot

        values = per_seed(out, done)
        labels = {a: get_arm(a).label for a in arms}
        print(write_contrasts(out, values, tested, refs, {a: labels[a] for a in tested}))
        written += ["contrasts.json", "contrasts.md"]
        for i, cond in enumerate(values):  # every arm's difference to the first reference, seed by seed
            if refs[0] in values[cond] and len(values[cond]) > 1:
                name = "paired.png" if len(values) == 1 else f"paired_{i}.png"
                paired_seeds_plot(values[cond], out / name, refs[0], labels)
                written.append(name)
    print(f"wrote {out}/ ({', '.join(written)})")
    return 0


def _figures(results: dict, out: Path, sweep) -> list[str]:
    """The study's figures in ``out``; their file names."""
    from oarl.lab.viz.study import gap_plot, learning_curves, role_entropy_curves, sweep_heatmaps

    if not results["conditions"]:
        return []
    learning_curves(results, out / "curves.png", ylabel="held-out accuracy (sampled)")
    role_entropy_curves(results, out / "entropy.png")
    written = ["curves.png", "entropy.png"]
    grid = dict(sweep)
    tau_beta = {"tau", "beta"} <= grid.keys()
    # one panel per condition, so not for a tau x beta grid (its heat maps show the same)
    if any(c["paired"] for c in results["conditions"].values()) and not tau_beta:
        written.append(gap_plot(results, out / "gaps.png").name)
    if tau_beta:
        panels = (
            ("final_sampled", "final sampled accuracy"),
            ("policy_entropy", "policy entropy (mean over steps)"),
            ("ess_ratio", "ESS-ratio (mean over steps)"),
        )
        written.append(sweep_heatmaps(results, out / "sweep.png", grid["tau"], grid["beta"], panels).name)
    return written


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
