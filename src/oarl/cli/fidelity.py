"""How faithfully each cheap scorer reproduces exact OAR-P, and at what cost (docs/fidelity.md).

Settings: each trained checkpoint given with ``--models NAME=PATH`` (default: the demo's cached warm start) on
sampled completions of its task, where the oracle causal tokens are known, and a random-init model of
another shape (``--shape 30m``: ~29M parameters, 32k vocabulary) on random token rows. For every probe and
scorer: Spearman and Kendall rank correlation with exact OAR-P on the same probe, top-10% overlap, oracle
recall@k and AUROC, and cost (seconds, forward/backward token-passes, ratio to OAR-G). ``--noises`` adds the
diagnosis: OAR-G's agreement vs its noise std, in float32 and float64. Prints tables, writes JSON + figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from oarl.cli._args import names, numbers, parse_models, run_main
from oarl.utils.atomic import atomic_write_json

NOISES = "1e-5,1e-4,1e-3,1e-2,3e-2,1e-1,3e-1,1"


def default_methods() -> list[str]:
    """The registered scorers compared by default: the gradient family (one pass each) and the controls that
    rank tokens (not ``uniform``, which ranks nothing, nor ``oracle``, which needs labels). The masking family
    approximates OAR-P at its own cost and has its own benchmarks (``benchmarks/approx_fidelity.py``)."""
    from oarl.core.scorers import SCORERS

    def ranks(s) -> bool:  # a control with a ranking of its own: it reads the model or draws
        return s.family == "controls" and bool(s.needs) and s.needs <= {"model", "randomness"}

    return [n for n, s in SCORERS.items() if s.family == "gradient" or ranks(s)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oarl fidelity", description=__doc__.splitlines()[0])
    p.add_argument(
        "--models", nargs="*", default=[], help="NAME=PATH ... (default: the demo warm start; 'none': skip)"
    )
    p.add_argument(
        "--other-mask",
        default="0",
        help="task models: the token of the OAR-P other-mask row ('none': skip that row)",
    )
    p.add_argument("--cache-dir", default="runs/cache", help="where the demo warm start is cached")
    p.add_argument("--samples", type=int, default=120, help="held-out problems per checkpoint")
    p.add_argument(
        "--data", help="JSONL of prompt/completion rows scored instead of a task's samples (real models)"
    )
    p.add_argument("--completions", default="sample", choices=["sample", "gold"])
    p.add_argument("--shape", default="30m", help="random-init model shape (30m, tiny) or 'none'")
    p.add_argument("--random-rows", type=int, default=8)
    p.add_argument("--random-reasoning", type=int, default=64, help="reasoning tokens per random row")
    p.add_argument(
        "--methods",
        default=None,
        help="comma list of scorers compared with exact OAR-P (default: every one-pass scorer, i.e. the gradient "
        "family, and the controls that rank tokens: oarl scorers lists them)",
    )
    p.add_argument("--probes", default="as_mean,lt_logits,as_joint")
    p.add_argument(
        "--noise-std", type=float, default=1e-3, help="noise for the gradient scorers (paper 1e-3)"
    )
    p.add_argument("--noises", default=NOISES, help="OAR-G noise sweep (comma list; '' to skip)")
    p.add_argument("--time-repeats", type=int, default=3, help="round-robin timing repeats (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default="runs/fidelity/fidelity.json",
        help="results JSON (default runs/fidelity/fidelity.json)",
    )
    p.add_argument("--figures", default=None, help="folder for figures (default: next to --out)")
    return p


def main(argv: list[str]) -> int:
    return run_main("fidelity", run, build_parser().parse_args(argv))


def pairs_batch(tokenizer, path: str) -> dict:
    """The rows of a ``prompt``/``completion`` JSONL file (e.g. a real model's own completions) that have an
    answer span, laid out as :func:`oarl.lab.viz.attribution.encode_pairs` does. No oracle tokens: real text has
    none, so only agreement with exact OAR-P and cost are measured."""
    import json

    from oarl.lab.viz.attribution import encode_pairs

    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows or any("prompt" not in r or "completion" not in r for r in rows):
        raise ValueError(f"{path}: need a non-empty JSONL with 'prompt' and 'completion' in every row")
    batch = encode_pairs(tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows])
    keep = batch.pop("found")
    if not keep.any():
        raise ValueError(f"{path}: no completion has an answer span (\\boxed{{}}, ####, 'The answer is')")
    return {k: v[keep] for k, v in batch.items()}


def _cell(m: dict | None) -> str:
    return "–" if not m or m.get("n", 0) == 0 else f"{m['mean']:.3f} ± {m['ci95']:.3f}"


def print_table(name: str, results: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"{name}: scorers vs exact OAR-P (mean ± 95% CI over rows)")
    for c in ("probe", "scorer", "Spearman", "Kendall", "top-10%", "recall@k", "AUROC", "seconds", "× OAR-G"):
        table.add_column(c, justify="right")
    for probe, rows in results.items():
        for method, r in rows.items():
            ratio = r.get("cost_ratio", {}).get("seconds")
            table.add_row(
                probe,
                method,
                _cell(r["spearman"]),
                _cell(r["kendall"]),
                _cell(r["top_overlap"]),
                _cell(r.get("recall")),
                _cell(r.get("auroc")),
                f"{r['cost']['seconds']:.2f}",
                "–" if ratio is None else f"{ratio:.2f}",
            )
    console.print(table)


def markdown_table(out: dict) -> str:
    """Every setting x probe x scorer as one markdown table (docs/fidelity.md shows the AS-Mean rows)."""

    lines = [
        "| setting | probe | scorer | Spearman | Kendall | top-10% | recall@k | AUROC | cost × OAR-G (s / passes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in out["settings"].items():
        timing = entry.get("timing_ratio", {})
        for probe, rows in entry["results"].items():
            for method, r in rows.items():
                units = r.get("cost_ratio", {}).get("units")
                secs = timing.get(method) if probe == names(out["config"]["probes"])[0] else None
                secs = r.get("cost_ratio", {}).get("seconds") if secs is None else secs
                cost = "–" if units is None else f"{secs:.2f} / {units:.2f}"
                lines.append(
                    f"| {name} | {probe} | {method} | {_cell(r['spearman'])} | {_cell(r['kendall'])} | "
                    f"{_cell(r['top_overlap'])} | {_cell(r.get('recall'))} | {_cell(r.get('auroc'))} | {cost} |"
                )
    return "\n".join(lines) + "\n"


def print_timing(name: str, entry: dict, probe: str, console) -> None:
    from rich.table import Table

    table = Table(title=f"{name}: median seconds, round-robin ({probe}); units = token-passes, backward = 2")
    for c in ("scorer", "seconds", "× OAR-G (s)", "× OAR-G (units)"):
        table.add_column(c, justify="right")
    rows = entry["results"][probe]
    for m, t in entry["timing"].items():
        ratio = entry.get("timing_ratio", {}).get(m)
        units = rows.get(m, {}).get("cost_ratio", {}).get("units")
        table.add_row(
            m, f"{t:.3f}", "–" if ratio is None else f"{ratio:.2f}", "–" if units is None else f"{units:.2f}"
        )
    console.print(table)


def run(args: argparse.Namespace) -> int:
    import warnings

    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from oarl.core.scorers import SCORERS
    from oarl.lab.testbed import fidelity_study as fs
    from oarl.lab.testbed.demo import checkpoint_task, demo_warm_start
    from oarl.lab.viz.fidelity import fidelity_vs_cost, noise_curves
    from oarl.utils.checkpoint import load_tokenizer

    warnings.filterwarnings("ignore", category=FutureWarning)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    methods = names(args.methods) or default_methods()
    probes = names(args.probes)
    unknown = [m for m in methods if m not in SCORERS]
    if unknown:
        raise ValueError(f"unknown scorer(s) {unknown}; expected some of {sorted(SCORERS)}")
    noises = numbers(args.noises, float)
    settings: dict[str, tuple] = {}
    if args.models == ["none"]:
        models = {}
    else:
        models = parse_models(args.models) or {"warm": str(demo_warm_start(args.cache_dir))}
    for name, path in models.items():
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        tok = load_tokenizer(path)
        if args.data:
            batch = pairs_batch(tok, args.data)
        else:
            task = checkpoint_task(path)
            batch = fs.task_batch(model, tok, task, args.samples, args.seed, completions=args.completions)
        other = None if args.other_mask == "none" else tok.convert_tokens_to_ids(args.other_mask)
        if args.other_mask != "none" and (other is None or other == tok.unk_token_id):
            raise ValueError(f"--other-mask {args.other_mask!r} is not a token of {path}")
        settings[name] = (
            model,
            batch,
            f"{path}: {len(batch['input_ids'])} {'rows of ' + args.data if args.data else args.completions} completions",
            other,
        )
    if args.shape != "none":
        model = fs.random_model(args.shape, args.seed)
        batch = fs.random_batch(
            model.config.vocab_size, args.random_rows, 32, args.random_reasoning, 4, args.seed
        )
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        desc = f"random init, {n_params:.1f}M parameters, random rows"
        settings[f"random-{args.shape}"] = (model, batch, desc, 1)  # the other-mask row replaces with id 1

    def progress(probe: str, method: str, r: dict) -> None:
        console.print(
            f"  {probe:9s} {method:13s} Spearman {r['spearman']['mean']:.3f}  {r['cost']['seconds']:.2f}s"
        )

    out = {"config": vars(args), "settings": {}}
    for name, (model, batch, description, other) in settings.items():
        console.print(f"[bold]{name}[/]: {description}")
        t0 = time.perf_counter()
        res = fs.evaluate(
            model, batch, methods, probes, args.seed, progress, other_mask_id=other, noise_std=args.noise_std
        )
        entry = {"description": description, "rows": len(batch["input_ids"]), "results": res}
        if args.time_repeats > 0:
            timed = [m for m in methods if m not in ("random", "uniform", "oracle")]
            entry["timing"] = fs.time_scorers(
                model, batch, timed, probes[0], args.time_repeats, noise_std=args.noise_std
            )
            if "gradient" in entry["timing"]:
                base = entry["timing"]["gradient"]
                entry["timing_ratio"] = {m: t / base for m, t in entry["timing"].items()}
            print_timing(name, entry, probes[0], console)
        if noises:
            entry["noise_sweep"] = fs.noise_sweep(model, batch, noises, probe=probes[0], seed=args.seed)
        entry["seconds"] = time.perf_counter() - t0
        out["settings"][name] = entry
        print_table(name, res, console)
    out_path = Path(args.out)
    atomic_write_json(out_path, out, indent=2)
    out_path.with_suffix(".md").write_text(markdown_table(out))
    figures = Path(args.figures) if args.figures else out_path.parent
    made = [
        fidelity_vs_cost({n: e["results"] for n, e in out["settings"].items()}, figures / "fidelity_cost.png")
    ]
    sweeps = {n: e["noise_sweep"] for n, e in out["settings"].items() if "noise_sweep" in e}
    if sweeps:
        made.append(noise_curves(sweeps, figures / "fidelity_noise.png"))
    console.print(f"wrote {out_path}, " + ", ".join(str(m) for m in made))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
