"""Train GRPO vs OAR-G vs OAR-P on the embedded arithmetic task, offline on a CPU, and compare them.

Steps: warm start by SFT (cached), oracle causal-token recall of every scorer on the warm model, then one
RL run per method and seed from the same checkpoint with the same budget. Writes
``<out_dir>/<time>/{metrics.jsonl, results.json, curves.png, attribution.png, config.yaml}``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

QUICK = dict(
    sft_problems=256, steps=2, prompts_per_step=2, num_generations=4, eval_problems=16, oracle_samples=16,
    eval_every=1, eval_samples=1, hidden_size=64, num_layers=2, max_completion_length=32,
)  # fmt: skip


@dataclass
class DemoArguments:
    out_dir: str = field(default="runs/demo", metadata={"help": "runs go to OUT_DIR/<time>/"})
    cache_dir: str = field(default="runs/cache", metadata={"help": "warm-start checkpoints are cached here"})
    methods: str = field(default="none,gradient,perturbation", metadata={"help": "comma list: none (GRPO), gradient, perturbation, entropy, random"})  # fmt: skip
    seeds: str = field(default="0", metadata={"help": "comma list of RL seeds"})
    quick: bool = field(default=False, metadata={"help": "a tiny smoke run (tests): tiny model, 2 RL steps"})
    chain_steps: str = field(default="2", metadata={"help": "derived steps on the answer's dependency path (min,max)"})  # fmt: skip
    distractor_steps: str = field(default="1", metadata={"help": "distractor steps (min,max)"})
    const_max: int = 9
    value_max: int = 19
    task_seed: int = 0
    sft_problems: int = 16000
    sft_epochs: float = 2.0
    sft_learning_rate: float = 2e-3
    hidden_size: int = 128
    num_layers: int = 4
    steps: int = field(default=100, metadata={"help": "RL steps per method"})
    prompts_per_step: int = 8
    num_generations: int = 8
    learning_rate: float = 3e-5
    max_completion_length: int = 48
    temperature: float = field(default=1.0, metadata={"help": "RL sampling temperature"})
    probe: str = "as_mean"
    tau: float = 0.4
    noise_std: float = field(
        default=0.1,
        metadata={"help": "OAR-G noise std (paper: 1e-3 on 7B models; on this tiny model 1e-3 ranks tokens no better than random, see README)"},
    )  # fmt: skip
    beta: float = 2.0
    eval_every: int = 20
    eval_problems: int = 200
    eval_samples: int = field(
        default=4, metadata={"help": "sampled completions per held-out problem (0: off)"}
    )
    oracle_samples: int = 200

    def __post_init__(self) -> None:
        if self.quick:
            for k, v in QUICK.items():
                setattr(self, k, v)


def new_run_dir(root: Path) -> Path:
    """``root/<YYYYmmdd-HHMMSS>`` (with a suffix if that exists already), created."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def _link_latest(target: Path, link: Path) -> Path:
    """Point ``link`` at the warm start just used (atomically), so commands can name it without its hash."""
    import os

    tmp = link.with_name(link.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.resolve(), target_is_directory=True)
    os.replace(tmp, link)
    return link


def _pair(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition(",")
    return int(lo), int(hi or lo)


def main(argv: list[str]) -> int:
    from trl import TrlParser

    parser = TrlParser([DemoArguments], prog="oarl demo", description=__doc__.splitlines()[0])
    (args,) = parser.parse_args_and_config(argv)
    return run(args)


def run(args: DemoArguments) -> int:
    import warnings

    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers v6 deprecation notices
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from oarl.batch.reshape import methods as valid_methods
    from oarl.math.evaluation import accuracy, generate_completions
    from oarl.testbed import oracle
    from oarl.testbed.experiment import METHOD_LABELS, JsonlWriter, RLSettings, run_rl, sampled_accuracy
    from oarl.testbed.tasks import arith
    from oarl.testbed.warmstart import WarmStartConfig, warm_start
    from oarl.utils.checkpoint import load_tokenizer
    from oarl.viz import plots

    console = Console(width=None if sys.stdout.isatty() else 120)  # logs to files keep whole tables
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in valid_methods()]
    if bad:
        console.print(f"[red]unknown method(s) {bad}; expected some of {valid_methods()}")
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    run_dir = new_run_dir(Path(args.out_dir))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(asdict(args), sort_keys=False))
    writer = JsonlWriter(run_dir / "metrics.jsonl")
    task = arith.ArithConfig(
        chain_steps=_pair(args.chain_steps), distractor_steps=_pair(args.distractor_steps),
        const_max=args.const_max, value_max=args.value_max, seed=args.task_seed,
    )  # fmt: skip
    ws = WarmStartConfig(
        train_problems=args.sft_problems, epochs=args.sft_epochs, learning_rate=args.sft_learning_rate,
        hidden_size=args.hidden_size, num_layers=args.num_layers,
    )  # fmt: skip
    t0 = time.perf_counter()
    console.rule("[bold]1/4 warm start (SFT, cached)")
    ckpt = warm_start(task, ws, args.cache_dir)
    latest = _link_latest(Path(ckpt), Path(args.cache_dir) / "arith-sft-latest")
    console.print(f"checkpoint: {ckpt}  (also {latest}; {time.perf_counter() - t0:.0f}s)")
    tok = load_tokenizer(ckpt)
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    held_out = arith.generate_problems(args.eval_problems, replace(task, seed=task.seed + 30_000))
    prompts, answers = [p.prompt for p in held_out], [p.answer for p in held_out]
    acc_before, greedy = accuracy(
        model, tok, prompts, arith.arith_reward, args.max_completion_length, answer=answers
    )
    sampled_before = None
    if args.eval_samples:
        sampled_before = sampled_accuracy(
            model, tok, held_out, args.eval_samples, args.max_completion_length, args.temperature, step=0
        )
    console.print(
        f"held-out accuracy before RL: {acc_before:.3f} greedy"
        + (f", {sampled_before:.3f} sampled (x{args.eval_samples})" if sampled_before is not None else "")
        + f" on {len(prompts)} problems"
    )

    console.rule("[bold]2/4 oracle causal-token recall of each scorer (warm model, sampled rollouts)")
    n_or = min(args.oracle_samples, len(prompts))
    torch.manual_seed(0)
    rollouts = generate_completions(model, tok, prompts[:n_or], args.max_completion_length, do_sample=True)
    batch = oracle.oracle_batch(tok, prompts[:n_or], rollouts)
    recall = oracle.scorer_recall(
        model, batch, ["perturbation", "gradient", "entropy", "random"], args.probe, noise_std=args.noise_std
    )
    for name, r in recall.items():
        console.print(f"  {name:12s} recall@k {r['recall']:.3f} ± {r['ci95']:.3f} (n={r['n']})")
    _attribution(model, tok, held_out, greedy, args, run_dir / "attribution.png")

    console.rule("[bold]3/4 RL: " + " vs ".join(METHOD_LABELS.get(m, m) for m in methods))
    rl = RLSettings(
        steps=args.steps, prompts_per_step=args.prompts_per_step, num_generations=args.num_generations,
        learning_rate=args.learning_rate, max_completion_length=args.max_completion_length, probe=args.probe,
        tau=args.tau, beta=args.beta, eval_every=args.eval_every, temperature=args.temperature,
        eval_samples=args.eval_samples, noise_std=args.noise_std,
    )  # fmt: skip
    results = {
        "accuracy_before": acc_before,
        "sampled_accuracy_before": sampled_before,
        "oracle_recall": recall,
        "runs": [],
        "checkpoint": str(ckpt),
    }
    for seed in seeds:
        for method in methods:
            writer.write(
                {
                    "method": method,
                    "label": METHOD_LABELS[method],
                    "seed": seed,
                    "step": 0,
                    "accuracy": acc_before,
                    **({"sampled_accuracy": sampled_before} if sampled_before is not None else {}),
                }
            )
            console.print(f"[bold]{METHOD_LABELS[method]}[/] seed {seed}")
            summary = run_rl(method, ckpt, task, rl, held_out, run_dir / "trainer", writer, seed=seed)
            summary.pop("model"), summary.pop("tokenizer")
            results["runs"].append(summary)
            _save(results, run_dir, plots)

    console.rule("[bold]4/4 results")
    results["seconds"] = time.perf_counter() - t0
    _save(results, run_dir, plots)
    _print_table(console, results, recall)
    console.print(f"wrote {run_dir}/ (metrics.jsonl, results.json, curves.png, attribution.png, config.yaml)")
    return 0


def _save(results: dict, run_dir: Path, plots) -> None:
    from oarl.utils.atomic import atomic_write_json

    atomic_write_json(run_dir / "results.json", results, indent=2)  # never a half-written results file
    plots.curves(plots.read_metrics([run_dir]), run_dir / "curves.png", "embedded arithmetic task")


def _attribution(model, tok, problems, greedy, args, path: Path) -> None:
    from oarl.testbed import oracle
    from oarl.testbed.tasks import arith
    from oarl.viz import plots

    pick = next(
        (
            i
            for i, (p, c) in enumerate(zip(problems, greedy, strict=True))
            if arith.extract_answer(c) == p.answer
        ),
        0,
    )
    batch = oracle.oracle_batch(tok, [problems[pick].prompt], [greedy[pick]])
    keep = batch["attention_mask"][0].bool()
    ids = batch["input_ids"][0][keep]
    tokens = tok.convert_ids_to_tokens(ids.tolist())
    names = {"perturbation": "OAR-P", "gradient": "OAR-G", "entropy": "entropy", "random": "random"}
    weights = {
        label: oracle.token_weights(
            model, batch, m, args.probe, noise_std=args.noise_std, tau=args.tau, beta=args.beta
        )[0][keep].tolist()
        for m, label in names.items()
    }
    plots.attribution_strip(
        tokens,
        weights,
        path,
        oracle=batch["oracle_mask"][0][keep].tolist(),
        answer=batch["answer_mask"][0][keep].tolist(),
    )


def _print_table(console, results: dict, recall: dict) -> None:
    from rich.table import Table

    table = Table(title=f"embedded arithmetic task; accuracy before RL {results['accuracy_before']:.3f}")
    for col in (
        "method",
        "seed",
        "acc after",
        "sampled after",
        "steps",
        "seconds",
        "scorer s/step",
        "ESS-ratio",
        "top-10% share",
        "oracle recall",
    ):
        table.add_column(col, justify="right")
    for r in results["runs"]:
        rec = recall.get(r["method"], {}).get("recall", float("nan"))
        table.add_row(
            r["label"], str(r["seed"]), f"{r['accuracy_after']:.3f}", _fmt(r.get("sampled_accuracy_after")),
            str(r["steps"]), f"{r['seconds']:.0f}",
            f"{r['scorer_seconds']:.3f}", f"{r['ess_ratio']:.3f}", f"{r['top10_adv_share']:.3f}",
            "-" if rec != rec else f"{rec:.3f}",
        )  # fmt: skip
    console.print(table)
    if len({r["seed"] for r in results["runs"]}) > 1:
        console.print(_seed_summary(results["runs"]))


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _mean_sd(xs: list[float]) -> str:
    import statistics

    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def _seed_summary(runs: list[dict]):
    """Accuracy after RL per method over seeds: mean ± sample std, and the greedy range."""
    from rich.table import Table

    table = Table(title="over seeds: held-out accuracy after RL (mean ± std)")
    for col in ("method", "seeds", "greedy", "greedy min..max", "sampled", "mean seconds"):
        table.add_column(col, justify="right")
    for label in dict.fromkeys(r["label"] for r in runs):
        mine = [r for r in runs if r["label"] == label]
        acc = [r["accuracy_after"] for r in mine]
        table.add_row(
            label, str(len(mine)), _mean_sd(acc), f"{min(acc):.3f}..{max(acc):.3f}",
            _mean_sd([r.get("sampled_accuracy_after") for r in mine]),
            f"{sum(r['seconds'] for r in mine) / len(mine):.0f}",
        )  # fmt: skip
    return table


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
