"""Measure OAR's cost: OAR-P vs the naive baseline (time, memory, T-scaling) and step time vs GRPO.

Writes ``OUT/bench.json``, ``OUT/bench.md`` (the tables) and ``OUT/scaling.png`` (seconds vs T, naive vs
oarl). ``--quick`` is a CI smoke run: tiny sizes, numbers not meaningful.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from oarl.cli._args import names, numbers
from oarl.utils.atomic import atomic_write_json
from oarl.utils.threads import THREADS_HELP, set_threads


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="benchmarks/results", help="output folder (default benchmarks/results)")
    p.add_argument("--models", default="tiny,qwen2-30m", help="comma list of bench models (tiny, qwen2-30m)")
    p.add_argument("--reasoning-len", type=int, default=256, help="T for the headline scorer comparison")
    p.add_argument(
        "--lengths", default="64,128,256,512,1024", help="T values of the scaling curve (tiny model)"
    )
    p.add_argument(
        "--max-len-large", type=int, default=256, help="longest T of the curve for non-tiny models"
    )
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (median)")
    p.add_argument("--step-steps", type=int, default=6, help="training steps per method and round")
    p.add_argument("--step-rounds", type=int, default=2, help="round-robin rounds of the step benchmark")
    p.add_argument("--skip-step", action="store_true", help="skip the training-step benchmark")
    p.add_argument("--skip-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--cache-dir", default="runs/cache", help="where the demo warm start is cached")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    p.add_argument("--quick", action="store_true", help="smoke run with tiny sizes (CI)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="oarl bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(a: argparse.Namespace) -> int:
    import warnings

    from rich.console import Console
    from tqdm.auto import tqdm

    from oarl.lab.bench.scorer import ScorerCase, peak_memory, time_scorers

    warnings.filterwarnings("ignore", category=FutureWarning)
    if a.quick:
        a.models, a.reasoning_len, a.lengths, a.reps, a.step_steps, a.step_rounds = (
            "tiny",
            32,
            "16,32",
            1,
            2,
            1,
        )
    console = Console()
    set_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, {a.device}"
    if a.device.startswith("cuda"):
        machine += f" ({torch.cuda.get_device_name()})"
    report: dict = {
        "machine": machine,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "scorer": {},
    }
    models = names(a.models)
    for name in tqdm(models, desc="scorer vs naive"):
        case = ScorerCase(model=name, reasoning_len=a.reasoning_len, device=a.device)
        res = time_scorers(case, reps=a.reps)
        if not a.skip_memory:
            res["peak_bytes"] = {n: peak_memory(case, n) for n in ("naive_oar_p", "oar_p")}
        report["scorer"][name] = res
    curve: dict = {}
    lengths = numbers(a.lengths, int)
    for name in models:
        todo = [t for t in lengths if name == "tiny" or t <= a.max_len_large]
        for T in tqdm(todo, desc=f"scaling ({name})"):
            case = ScorerCase(model=name, reasoning_len=T, device=a.device)
            curve.setdefault(name, {})[T] = time_scorers(case, reps=1 if T > 256 else a.reps)["seconds"]
    report["scaling"] = curve
    if not a.skip_step:
        report["step"] = _step_bench(a)
    atomic_write_json(out / "bench.json", report, indent=2)
    _plot(curve, out / "scaling.png", machine)
    md = _markdown(report)
    (out / "bench.md").write_text(md)
    console.print(md)
    console.print(f"wrote {out}/bench.json, bench.md, scaling.png")
    return 0


def _step_bench(a: argparse.Namespace) -> dict:
    from oarl.lab.bench.step import step_times
    from oarl.lab.testbed.tasks import ArithTask, arith
    from oarl.lab.testbed.warmstart import WarmStartConfig, warm_start

    ws = WarmStartConfig(train_problems=256, hidden_size=64, num_layers=2) if a.quick else WarmStartConfig()
    # as `oarl demo` spelt it: same cache
    task = ArithTask(arith.ArithConfig(chain_steps=(2, 2), distractor_steps=(1, 1)))
    path = warm_start(task, ws, a.cache_dir, progress=False)
    kw = dict(prompts_per_step=2, num_generations=4, max_completion_length=32) if a.quick else {}
    return step_times(path, steps=a.step_steps, rounds=a.step_rounds, **kw)


def _plot(curve: dict, path: Path, machine: str) -> None:
    from oarl.lab.viz.plots import plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, by_t in curve.items():
        ts = sorted(by_t)
        for key, style in (
            ("naive_oar_p", "--"),
            ("oar_p", "-"),
            ("perturbation_linear", "-."),
            ("oar_g", ":"),
        ):
            ax.plot(ts, [by_t[t][key] for t in ts], style, marker="o", label=f"{key} ({name})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("reasoning tokens T")
    ax.set_ylabel("seconds per sequence")
    ax.set_title(f"scorer cost vs T\n{machine}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


GUARD = 0.8  # regression guard: a measured OAR-P speed-up should stay at >= 0.8 of the exact-compute limit


def _limit_cells(res: dict) -> str:
    """``limit | speed-up / limit`` cells of the headline row, flagged when below :data:`GUARD`."""
    lim = res.get("exact_limit")
    if not lim:
        return "- | -"
    flag = "" if lim["of_limit"] >= GUARD else " (below guard)"
    return f"{lim['limit']:.1f}x | {lim['of_limit']:.2f}{flag}"


def _markdown(r: dict) -> str:
    from oarl.lab.bench.scorer import ScorerCase, exact_compute_limit

    lines = [f"Machine: {r['machine']}, torch {r['torch']}, {r['date']}", ""]
    lines += [
        "| model | T | naive OAR-P s | oarl OAR-P s | speed-up | exact-compute limit | of limit (guard >= 0.8) | OAR-G s "
        "| OAR-P linear s | max abs diff | peak mem naive | peak mem oarl | mem ratio |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in r["scorer"].items():
        s = res["seconds"]
        mem = res.get("peak_bytes", {})
        ratio = mem["oar_p"] / mem["naive_oar_p"] if mem.get("naive_oar_p") else float("nan")
        lines.append(
            f"| {name} | {res['case']['reasoning_len']} | {s['naive_oar_p']:.3f} | {s['oar_p']:.3f} | "
            f"{s['naive_oar_p'] / s['oar_p']:.1f}x | {_limit_cells(res)} | {s['oar_g']:.3f} | "
            f"{s.get('perturbation_linear', float('nan')):.3f} | {res.get('max_abs_diff', float('nan')):.1e} | "
            f"{mem.get('naive_oar_p', 0) / 2**20:.0f} MiB | {mem.get('oar_p', 0) / 2**20:.0f} MiB | {ratio:.2f} |"
        )
    if "step" in r:
        lines += [
            "",
            "| method | step s (median) | ratio vs GRPO | scorer s | zero-adv completions scored | steps |",
        ]
        lines += ["|---|---|---|---|---|---|"]
        for m, v in r["step"].items():
            lines.append(
                f"| {m} | {v['step_seconds']:.3f} | {v['ratio_vs_grpo']:.2f}x | {v['scorer_seconds']:.3f} | "
                f"{v['zero_adv_scored']} | {v['n_steps']} |"
            )
    lines += [
        "",
        "| model | T | naive s | oarl OAR-P s | speed-up | exact-compute limit | of limit | OAR-G s | OAR-P linear s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_t in r["scaling"].items():
        for t, s in sorted(by_t.items(), key=lambda kv: int(kv[0])):
            sp = s["naive_oar_p"] / s["oar_p"]
            lim = exact_compute_limit(ScorerCase(model=name, reasoning_len=int(t)))["limit"]
            lines.append(
                f"| {name} | {t} | {s['naive_oar_p']:.3f} | {s['oar_p']:.3f} | {sp:.1f}x | {lim:.1f}x | "
                f"{sp / lim:.2f}{'' if sp / lim >= GUARD else ' (below guard)'} | {s['oar_g']:.3f} | "
                f"{s.get('perturbation_linear', float('nan')):.3f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
