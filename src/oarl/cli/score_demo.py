"""Score one sequence with every scorer on a tiny random model; check OAR-P against the slow reference."""

from __future__ import annotations

import argparse
import time

import torch

from oarl.cli._args import PROBE_CHOICES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reasoning-len", type=int, default=24, help="reasoning tokens in the sequence")
    p.add_argument("--probe", default="as_mean", choices=PROBE_CHOICES)
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="oarl score-demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from oarl import bilevel_weights, ess_ratio, get_scorer
    from oarl.core.scorers import naive_perturbation_scores, shared_options

    torch.manual_seed(args.seed)
    cfg = Qwen2Config(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    prompt, reasoning, answer = 6, args.reasoning_len, 3
    L = prompt + reasoning + answer
    ids = torch.randint(1, 64, (1, L))
    am = torch.ones_like(ids)
    rm = torch.zeros(1, L, dtype=torch.bool)
    rm[0, prompt : prompt + reasoning] = True
    an = torch.zeros_like(rm)
    an[0, prompt + reasoning :] = True
    batch = (ids, am, rm, an)
    console = Console()
    table = Table(title=f"OAR scorers on a random tiny Qwen2 ({args.probe}, T={reasoning})")
    for col in ("scorer", "seconds", "ESS-ratio", "top token", "max weight"):
        table.add_column(col)
    results = {}
    for name in ("perturbation", "gradient", "entropy", "random"):
        t0 = time.perf_counter()
        opts = shared_options(name, probe=args.probe)
        s = get_scorer(name)(model, *batch, generator=torch.Generator().manual_seed(args.seed), **opts)
        dt = time.perf_counter() - t0
        w = bilevel_weights(s, rm)
        results[name] = s
        table.add_row(
            name, f"{dt:.3f}", f"{ess_ratio(w, rm).item():.3f}", str(int(s.argmax())), f"{w.max():.2f}"
        )
    console.print(table)
    ref = naive_perturbation_scores(model, *batch, probe=args.probe)
    diff = (ref - results["perturbation"]).abs().max().item()
    console.print(f"OAR-P fast vs slow reference: max |diff| = {diff:.2e}")
    return 0 if diff < 1e-4 else 1
