"""Token-credit heatmaps: score prompt + completion pairs with several methods, write one HTML file + a PNG.

Sources (one of): ``--prompt P --completion C`` (repeatable), ``--text T`` (split after the first ``--sep``),
``--data FILE.jsonl --index N ...`` (fields ``--prompt-field``/``--completion-field``; GSM8K's
``question``/``answer`` are found by themselves), or ``--task arith`` (held-out problems of the embedded task
with the model's own greedy or sampled completions or the gold ones, ``--completions``; oracle causal tokens
underlined). The PNGs (one per pair) use the HTML page's colour scale (:mod:`oarl.lab.viz.palette`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oarl.cli._args import PROBE_CHOICES, names, run_main
from oarl.lab.models.resolve import resolve_model

FIELD_PAIRS = (("prompt", "completion"), ("question", "answer"))


def build_parser() -> argparse.ArgumentParser:
    from oarl.core import gating

    p = argparse.ArgumentParser(prog="oarl attribute", description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", required=True, help="local model folder (model + tokenizer) or short name (smollm2-135m)"
    )
    src = p.add_argument_group("what to score (one source)")
    src.add_argument("--prompt", action="append", default=[], help="a prompt (pair with --completion)")
    src.add_argument("--completion", action="append", default=[], help="its completion")
    src.add_argument("--text", action="append", default=[], help="prompt + completion in one string")
    src.add_argument("--sep", default="\n", help="--text is split after the first SEP (default: newline)")
    src.add_argument("--data", help="a JSONL file; rows picked with --index")
    src.add_argument("--index", type=int, nargs="+", default=[0], help="0-based row numbers in --data")
    src.add_argument("--prompt-field", help="prompt field of --data rows (default: prompt, else question)")
    src.add_argument("--completion-field", help="completion field (default: completion, else answer)")
    src.add_argument(
        "--task", choices=["arith", "flag"], help="held-out problems of the checkpoint's testbed task"
    )
    src.add_argument("--num", type=int, default=3, help="--task: number of problems")
    src.add_argument("--max-new-tokens", type=int, default=48, help="--task: completion length")
    src.add_argument(
        "--completions",
        default="greedy",
        choices=["greedy", "sample", "gold"],
        help="--task: the model's greedy or sampled completions, or the gold ones",
    )
    sc = p.add_argument_group("scoring")
    sc.add_argument("--method", default="perturbation,gradient,entropy,random", help="comma list of scorers")
    sc.add_argument("--probe", default="as_mean", choices=PROBE_CHOICES)
    sc.add_argument("--tau", type=float, default=gating.TAU)
    sc.add_argument("--beta", type=float, default=gating.BETA)
    sc.add_argument("--floor", type=float, default=gating.FLOOR)
    sc.add_argument("--seed", type=int, default=0, help="seed of the gradient noise and the random scorer")
    sc.add_argument("--mask-token", help="OAR-P replacement token (default: the pad token)")
    sc.add_argument("--noise-std", type=float, default=1e-3, help="OAR-G noise std (paper 1e-3; demo 0.1)")
    sc.add_argument("--device", default=None, help="cpu or cuda (default: the machine's, oarl.utils.device)")
    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        default="runs/attribution/attribution.html",
        help="the HTML file (default runs/attribution/attribution.html, under the current folder)",
    )
    out.add_argument(
        "--png",
        help="the PNG heatmap (default: --out with .png, runs/attribution/attribution.png; several rows: -<i>.png)",
    )
    out.add_argument("--no-png", action="store_true")
    out.add_argument("--wrap", type=int, default=48, help="tokens per line in the PNG")
    out.add_argument("--title", default="Token credit")
    out.add_argument("--classes", help="also write each scorer's credit per token class (JSON + .md table)")
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_main("attribute", run, args, errors=(ValueError, FileNotFoundError, IndexError, KeyError))


def split_text(text: str, sep: str) -> tuple[str, str]:
    """``text`` cut after the first ``sep`` (which stays with the prompt).

    Without ``sep`` the whole text is the completion (empty prompt): that is how a user first tries the
    command, so it is scored rather than refused, and stderr says so.
    """
    cut = text.find(sep) if sep else -1
    if cut < 0:
        print(
            f"oarl attribute: --text has no separator {sep!r}: scoring it all as the completion (empty prompt)",
            file=sys.stderr,
        )
        return "", text
    return text[: cut + len(sep)], text[cut + len(sep) :]


def read_jsonl_rows(
    path: str | Path, indices: list[int], prompt_field: str | None, completion_field: str | None
) -> list[tuple[str, str]]:
    """``(prompt, completion)`` of the 0-based rows ``indices`` of a JSONL file."""
    wanted, rows = set(indices), {}
    with Path(path).open() as f:
        for i, line in enumerate(f):
            if i in wanted and line.strip():
                rows[i] = json.loads(line)
    missing = sorted(wanted - set(rows))
    if missing:
        raise IndexError(f"{path}: no row(s) {missing} (0-based)")
    out = []
    for i in indices:
        row = rows[i]
        pf, cf = prompt_field, completion_field
        if pf is None or cf is None:
            pair = next((fp for fp in FIELD_PAIRS if fp[0] in row and fp[1] in row), None)
            if pair is None:
                raise KeyError(
                    f"{path} row {i}: no prompt/completion or question/answer fields; use --*-field"
                )
            pf, cf = pf or pair[0], cf or pair[1]
        out.append((str(row[pf]), str(row[cf])))
    return out


def collect_pairs(args, model, tok) -> tuple[list[str], list[str], list[str], object]:
    """Prompts, completions, titles and the testbed task whose oracle tokens are known (else False)."""
    sources = [bool(args.prompt or args.completion), bool(args.text), bool(args.data), bool(args.task)]
    if sum(sources) != 1:
        raise ValueError("give exactly one source: --prompt/--completion, --text, --data or --task")
    if args.prompt or args.completion:
        if len(args.prompt) != len(args.completion):
            raise ValueError("give as many --prompt as --completion")
        n = len(args.prompt)
        return list(args.prompt), list(args.completion), [f"example {i + 1}" for i in range(n)], False
    if args.text:
        pairs = [split_text(t, args.sep) for t in args.text]
        return (
            [p for p, _ in pairs],
            [c for _, c in pairs],
            [f"example {i + 1}" for i in range(len(pairs))],
            False,
        )
    if args.data:
        pairs = read_jsonl_rows(args.data, args.index, args.prompt_field, args.completion_field)
        titles = [f"{Path(args.data).name} row {i}" for i in args.index]
        return [p for p, _ in pairs], [c for _, c in pairs], titles, False
    from oarl.lab.math.evaluation import generate_completions
    from oarl.lab.testbed.demo import checkpoint_task

    task = checkpoint_task(args.model, default=args.task)
    problems = task.problems(args.num, seed=30_000)
    prompts = [p.prompt for p in problems]
    if args.completions == "gold":
        completions = [p.completion for p in problems]
    else:
        sample = args.completions == "sample"
        completions = generate_completions(model, tok, prompts, args.max_new_tokens, do_sample=sample)
    titles = []
    from oarl.lab.testbed.tasks.arith import extract_answer

    for i, (p, c) in enumerate(zip(problems, completions, strict=True)):
        got = extract_answer(c)
        mark = "correct" if got == p.answer else "wrong"
        who = "gold completion" if args.completions == "gold" else "model"
        shown = got if got is not None else "—"
        titles.append(f"held-out problem {i + 1}: answer {p.answer}, {who} {shown} ({mark})")
    return prompts, completions, titles, task


def png_paths(args, n: int) -> list[Path]:
    """Where the PNG heatmaps go: one file, or ``<stem>-<i>.png`` per row when there are several."""
    base = Path(args.png) if args.png else Path(args.out).with_suffix(".png")
    return [base] if n == 1 else [base.with_name(f"{base.stem}-{i + 1}{base.suffix}") for i in range(n)]


def write_pngs(att, paths: list[Path], oracle: bool, wrap: int) -> list[Path]:
    """One PNG heatmap per row of ``att`` (its completion tokens, every method), on the HTML page's scale."""
    from oarl.batch.settings import method_label
    from oarl.lab.viz.attribution import NO_SPAN_NOTE, row_stats
    from oarl.lab.viz.html_report import weight_range
    from oarl.lab.viz.plots import attribution_strip

    vrange = weight_range(att)
    for b, (row, path) in enumerate(zip(att.rows, paths, strict=True)):
        cols = [t.column for t in row.completion]
        weights = {}
        for m, r in att.methods.items():
            stats = row_stats(float(r.ess_ratio[b]), float(r.top10_share[b]), row.found)
            weights[f"{method_label(m)}\n{stats}"] = r.weights[b, cols].tolist()
        attribution_strip(
            [t.text for t in row.completion],
            weights,
            path,
            oracle=[t.oracle for t in row.completion] if oracle is not False else None,
            answer=[t.role == "answer" for t in row.completion],
            title=row.title if row.found else f"{row.title} ({NO_SPAN_NOTE})",
            wrap=wrap,
            vrange=vrange,
            caption="prompt: " + "".join(t.text for t in row.prompt),
        )
    return paths


def write_classes(att, args: argparse.Namespace, path: Path) -> None:
    """Each scorer's share of credit per token class (:mod:`oarl.lab.viz.token_classes`), JSON + markdown."""
    from oarl.lab.viz.attribution import METHOD_LABELS
    from oarl.lab.viz.token_classes import class_shares, markdown
    from oarl.utils.atomic import atomic_write_json, atomic_write_text

    shares = class_shares(att)
    meta = {"command": "oarl attribute " + " ".join(sys.argv[2:]), "rows": len(att.rows), "args": vars(args)}
    atomic_write_json(path, {**meta, "classes": shares}, indent=1)
    atomic_write_text(path.with_suffix(".md"), markdown(shares, METHOD_LABELS))
    print(f"wrote {path} and {path.with_suffix('.md')}")
    print(markdown(shares, METHOD_LABELS))


def run(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    from oarl.batch.settings import method_label
    from oarl.lab.viz.attribution import NO_SPAN_NOTE, attribute, no_span_help
    from oarl.lab.viz.html_report import render_html
    from oarl.utils.checkpoint import load_tokenizer

    args.model = resolve_model(args.model)
    if args.device is None:
        from oarl.utils.device import device_flags

        args.device = "cpu" if device_flags()["use_cpu"] else "cuda"
    methods = names(args.method)
    tok = load_tokenizer(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).to(args.device).eval()
    torch.manual_seed(args.seed)  # --completions sample
    prompts, completions, titles, oracle = collect_pairs(args, model, tok)
    options: dict = {"noise_std": args.noise_std}
    if args.mask_token is not None:
        mask_id = tok.convert_tokens_to_ids(args.mask_token)
        if mask_id is None or mask_id == tok.unk_token_id:
            raise ValueError(f"--mask-token {args.mask_token!r} is not a token of this tokenizer")
        options["mask_token_id"] = mask_id
    att = attribute(
        model,
        tok,
        prompts,
        completions,
        methods,
        args.probe,
        args.tau,
        args.beta,
        args.floor,
        args.seed,
        oracle=oracle,
        titles=titles,
        **options,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(att, args.title, subtitle=f"model {args.model}"), encoding="utf-8")
    print(f"wrote {out}")
    if not args.no_png:
        for path in write_pngs(att, png_paths(args, len(att.rows)), oracle, args.wrap):
            print(f"wrote {path}")
    if args.classes:
        write_classes(att, args, Path(args.classes))
    found = att.batch["found"]
    for b, row in enumerate(att.rows):
        if not row.found:
            print(f"  row {b + 1}: {NO_SPAN_NOTE} ({no_span_help()})")
    if not found.any():
        return 0
    for m, r in att.methods.items():
        ess = r.ess_ratio[found].mean().item()
        top = r.top10_share[found].nanmean().item()
        print(
            f"  {method_label(m):8s} ESS-ratio {ess:.3f}  top-10% share {top:.3f}  ({int(found.sum())} scored row(s))"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
