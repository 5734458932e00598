"""Scorers vs the oracle causal tokens of the embedded task: recall@k, precision@k and AUROC with 95% CIs.

For each checkpoint (``--models warm=PATH rl=PATH``; default: the demo's cached warm start) it samples
completions of held-out problems (or takes the greedy or gold ones), keeps the rows with an answer span and
oracle tokens, and scores their reasoning tokens with every method. Per row: recall@k (k = number of oracle
tokens), precision@k (k = the top ``--precision-frac`` of the reasoning tokens), AUROC (ties count one
half); mean and normal 95% interval over rows. The mask ablation re-runs OAR-P with other replacement
tokens: ``pad`` (the default, never seen inside a sequence: out of distribution), a fixed token such as
``0``, or ``digits`` (the mean over the ten digits other than the token itself, see
:func:`oarl.lab.testbed.oracle.replacement_scores`). Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from oarl.cli._args import PROBE_CHOICES, names, parse_models, run_main
from oarl.lab.testbed.demo import checkpoint_task, demo_warm_start
from oarl.utils.atomic import atomic_write_json

DIGITS = [str(d) for d in range(10)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oarl oracle-eval", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=[], help="NAME=PATH ... (default: the demo warm start)")
    p.add_argument("--cache-dir", default="runs/cache", help="where the demo warm start is cached")
    p.add_argument("--samples", type=int, default=200, help="held-out problems")
    p.add_argument("--completions", default="sample", choices=["sample", "greedy", "gold"])
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--methods", default="perturbation,gradient,entropy,random", help="comma list of scorers")
    p.add_argument("--probe", default="as_mean", choices=PROBE_CHOICES)
    p.add_argument("--masks", default="pad,0,digits", help="OAR-P replacement ablation: pad, a token, digits")
    p.add_argument("--precision-frac", type=float, default=0.1, help="precision@k with k = ceil(frac * T)")
    p.add_argument(
        "--noise-std", type=float, default=1e-3, help="OAR-G noise std (paper 1e-3; the demo uses 0.1)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default="runs/oracle_eval/oracle_eval.json",
        help="results JSON (default runs/oracle_eval/oracle_eval.json)",
    )
    return p


def main(argv: list[str]) -> int:
    return run_main("oracle-eval", run, build_parser().parse_args(argv))


def mask_ids(specs: str, tokenizer, model) -> dict[str, list[int]]:
    """``pad`` -> the pad id, ``digits`` -> the ids of 0-9, anything else -> that token's id."""
    out = {}
    for spec in names(specs):
        if spec == "pad":
            pad = getattr(model.config, "pad_token_id", None)
            ids = [pad if pad is not None else tokenizer.pad_token_id]
        else:
            ids = [tokenizer.convert_tokens_to_ids(t) for t in (DIGITS if spec == "digits" else [spec])]
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ValueError(f"mask {spec!r}: not a token of this tokenizer")
        label = {"pad": "pad (default)", "digits": "random other digit"}.get(spec, f"token {spec!r}")
        out[label] = ids
    return out


def evaluate_model(path: str, args: argparse.Namespace, methods: list[str]) -> dict:
    """Metrics of every scorer and every mask on one checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    from oarl.lab.math.evaluation import generate_completions
    from oarl.lab.testbed import oracle
    from oarl.utils.checkpoint import load_tokenizer

    t0 = time.perf_counter()
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    task = checkpoint_task(path)
    problems = task.problems(args.samples, seed=30_000)
    prompts = [p.prompt for p in problems]
    if args.completions == "gold":
        completions = [p.completion for p in problems]
    else:
        torch.manual_seed(args.seed)
        sample = args.completions == "sample"
        completions = generate_completions(
            model, tok, prompts, args.max_new_tokens, do_sample=sample, temperature=args.temperature
        )
    correct = task.reward(prompts, completions, answer=[p.answer for p in problems])
    batch = oracle.oracle_batch(tok, prompts, completions, task)
    common = dict(probe=args.probe, batch_size=args.batch_size, precision_frac=args.precision_frac)
    scorers = oracle.scorer_metrics(model, batch, methods, seed=args.seed, noise_std=args.noise_std, **common)
    masks = oracle.mask_ablation(model, batch, mask_ids(args.masks, tok, model), **common)
    return {
        "path": str(path),
        "completion_accuracy": sum(correct) / len(correct),
        "rows": len(prompts),
        "scorable_rows": int(oracle.scorable_rows(batch).sum()),
        "scorers": scorers,
        "mask_ablation": masks,
        "seconds": time.perf_counter() - t0,
    }


def _cell(m: dict) -> str:
    return "–" if m["n"] == 0 else f"{m['mean']:.3f} ± {m['ci95']:.3f}"


def print_tables(results: dict, console) -> None:
    """One table of scorers (with a chance row) and one of the mask ablation, over all models."""
    from rich.table import Table

    from oarl.batch.settings import method_label

    cols = ("model", "scorer", "recall@k", "precision@k", "AUROC", "weight on chatter", "rows")
    for key, title in (("scorers", "scorers vs oracle causal tokens"), ("mask_ablation", "OAR-P mask token")):
        table = Table(title=f"{title} (mean ± 95% CI over rows)")
        for c in cols:
            table.add_column(c if c != "scorer" or key == "scorers" else "mask", justify="right")
        for name, r in results["models"].items():
            for method, m in r[key].items():
                label = method_label(method)
                chat = _cell(m["chatter_weight_share"]) if "chatter_weight_share" in m else "–"
                table.add_row(
                    name,
                    label,
                    _cell(m["recall"]),
                    _cell(m["precision"]),
                    _cell(m["auroc"]),
                    chat,
                    str(m["recall"]["n"]),
                )
            if key == "scorers" and r[key]:
                chance = next(iter(r[key].values()))["chance"]
                first = next(iter(r[key].values()))
                uniform = _cell(first["chatter_token_share"]) if "chatter_token_share" in first else "–"
                table.add_row(
                    name, "chance / uniform", _cell(chance), _cell(chance), "0.500", uniform, str(chance["n"])
                )
        console.print(table)


def run(args: argparse.Namespace) -> int:
    import warnings

    from rich.console import Console

    from oarl.core.scorers import SCORERS

    warnings.filterwarnings("ignore", category=FutureWarning)
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # files and pipes: keep the tables unwrapped
    methods = names(args.methods)
    unknown = [m for m in methods if m not in SCORERS]
    if unknown:
        raise ValueError(f"unknown scorer(s) {unknown}; expected some of {sorted(SCORERS)}")
    models = parse_models(args.models) or {"warm": str(demo_warm_start(args.cache_dir))}
    results = {"config": {k: v for k, v in vars(args).items() if k != "models"}, "models": {}}
    for name, path in models.items():
        console.print(f"[bold]{name}[/]: {path}")
        r = evaluate_model(path, args, methods)
        results["models"][name] = r
        console.print(
            f"  {r['scorable_rows']}/{r['rows']} rows scorable; completion accuracy "
            f"{r['completion_accuracy']:.3f}; {r['seconds']:.0f}s"
        )
    print_tables(results, console)
    out = Path(args.out)
    atomic_write_json(out, results, indent=2)
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
