"""Check OAR on a GPU with a local model: ``oarl gpu-check --model PATH`` (``make gpu-check MODEL=PATH``).

1. Scorer fidelity in bf16 against float32 on the same weights (OAR-P, OAR-G at ``--noise-std`` with and
   without ``upcast``, entropy): Spearman and top-10% overlap per row on GSM8K test problems with their
   reference solutions as completions (or the flag task's, ``--data flag``, for a testbed checkpoint).
2. ``--steps`` trainer steps of each arm (GRPO, OAR-G, OAR-P) on GSM8K train with TRL's vLLM generation
   (colocate), each arm in its own process; prints step times and their ratio to GRPO's.

Without a CUDA GPU it exits with code 2 and says so; ``--cpu`` runs part 1 only, on the CPU.
Results: a table on stdout and ``<out>/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from oarl.cli._args import names, new_root, remove_if_empty, usage_error
from oarl.lab.models.registry import DEFAULT_MODEL
from oarl.lab.models.resolve import resolve_model

ARMS = {"grpo": "none", "oar-g": "gradient", "oar-p": "perturbation"}
NO_GPU = (
    "oarl gpu-check needs a CUDA GPU, and torch sees none on this machine. Run it where the GPU is, with a "
    f"local model folder or short name (make gpu-check MODEL=/models/Qwen2.5-1.5B-Instruct; default "
    f"{DEFAULT_MODEL}) and vllm installed; "
    "`oarl gpu-check --cpu --model PATH` runs the bf16-vs-float32 scorer check alone on the CPU."
)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="oarl gpu-check", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model",
        default=os.environ.get("MODEL") or DEFAULT_MODEL,
        help=f"local model folder or short name (default $MODEL, else {DEFAULT_MODEL})",
    )
    ap.add_argument(
        "--data",
        default="gsm8k",
        choices=["gsm8k", "flag"],
        help="scorer-check rows: GSM8K test (needs the benchmark copy) or flag-task problems (any model)",
    )
    ap.add_argument("--data-dir", default=None, help="benchmark folder (default ../shared/data)")
    ap.add_argument("--rows", type=int, default=16, help="rows for the scorer check")
    ap.add_argument("--noise-std", type=float, default=1e-3, help="OAR-G noise (the paper's 1e-3)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma list of grpo, oar-g, oar-p")
    ap.add_argument("--steps", type=int, default=2, help="trainer steps per arm")
    ap.add_argument("--train-rows", type=int, default=64, help="GSM8K train rows for the trainer steps")
    ap.add_argument(
        "--batch", type=int, default=32, help="completions per step (per_device_train_batch_size)"
    )
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--max-completion-length", type=int, default=512)
    ap.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3)
    ap.add_argument("--no-vllm", action="store_true", help="generate with transformers instead of vLLM")
    ap.add_argument("--skip-precision", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--cpu", action="store_true", help="no GPU: the scorer check only, on the CPU")
    ap.add_argument("--out", default=None, help="output folder (default runs/gpu_check/<time>)")
    ap.add_argument("--arm", default=None, help=argparse.SUPPRESS)  # internal: run one arm in this process
    return ap


def main(argv: list[str]) -> int:
    import torch

    args = parser().parse_args(argv)
    if not args.model:
        print("oarl gpu-check: give --model PATH (or MODEL=PATH), a local model folder", file=sys.stderr)
        return 2
    if not torch.cuda.is_available() and not args.cpu:
        print(NO_GPU, file=sys.stderr)
        return 2
    try:
        args.model = resolve_model(args.model)
    except FileNotFoundError as e:
        return usage_error("gpu-check", e)
    out = Path(args.out or f"runs/gpu_check/{time.strftime('%Y%m%d-%H%M%S')}")
    made = new_root(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        return train_arm(args, out) if args.arm else check(args, out)
    except (ValueError, FileNotFoundError) as e:  # bad data or settings: a usage error, not a traceback
        remove_if_empty(made)
        return usage_error("gpu-check", e)
    except BaseException:
        remove_if_empty(made)  # a failed check leaves no empty runs/gpu_check/<time>
        raise


def check(args: argparse.Namespace, out: Path) -> int:
    """The scorer check, then (on a GPU) the trainer steps of each arm; writes ``out/gpu_check.json``."""
    results: dict = {"model": args.model, "device": device_name(args.cpu), "args": vars(args)}
    if not args.skip_precision:
        results["precision"] = precision_check(args)
        print(f"\n## bf16 vs float32 scores ({results['device']})\n")
        from oarl.lab.testbed.precision import format_fidelity

        print(format_fidelity(results["precision"]))
    if not (args.skip_train or args.cpu):
        results["steps"] = {arm: time_arm_steps(args, out, arm) for arm in names(args.arms)}
        print(f"\n## trainer steps ({'vLLM colocate' if not args.no_vllm else 'transformers'} generation)\n")
        print(format_steps(results["steps"]))
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out / 'gpu_check.json'}")
    return 0


def device_name(cpu: bool) -> str:
    import torch

    if cpu or not torch.cuda.is_available():
        return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}"
    return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"


def scorer_rows(args, tokenizer) -> tuple[list[str], list[str]]:
    """Prompts (as the policy sees them) and completions whose reasoning ends in an answer span."""
    if args.data == "flag":
        from oarl.lab.testbed.tasks import flag
        from oarl.lab.testbed.tasks.flag_task import FlagTask

        marker = Path(args.model) / "oarl_warmstart.json"
        if marker.is_file():  # a flag warm start: its own task settings
            info = json.loads(marker.read_text())["task"]
            info.pop("task")
            config = flag.FlagConfig(**info)
        else:  # any other model (smollm2-135m): the study's flag settings, as text
            from oarl.lab.testbed.tasks import get_task

            config = get_task("flag").recipe().config
        problems = FlagTask(config).problems(args.rows, seed=555)
        return [p.prompt for p in problems], [p.completion for p in problems]
    from oarl.lab.math.data import load_gsm8k
    from oarl.lab.math.prompts import PromptTemplate, build_prompt, render_prompt

    ds = load_gsm8k("test", args.data_dir).select(range(args.rows))
    template = PromptTemplate()
    prompts = [render_prompt(build_prompt(q, tokenizer, template), tokenizer) for q in ds["question"]]
    # The reference solution as the completion, calculator notes removed, "#### x" as the answer span.
    completions = [re.sub(r"<<[^>]*>>", "", s) for s in ds["solution"]]
    return prompts, completions


def precision_check(args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from oarl.lab.testbed.oracle import text_batch
    from oarl.lab.testbed.precision import precision_fidelity
    from oarl.utils.checkpoint import load_tokenizer

    device = "cpu" if args.cpu else "cuda"
    tok = load_tokenizer(args.model)
    batch = text_batch(tok, *scorer_rows(args, tok))
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device).eval()
    res = {}
    runs = [
        ("perturbation", {}),
        ("perturbation", {"upcast": True}),
        ("entropy", {}),
        ("gradient", {"noise_std": args.noise_std}),
        ("gradient", {"noise_std": args.noise_std, "upcast": True}),
        ("gradient", {"noise_std": 0.1}),
    ]
    for method, options in runs:
        label = method + "".join(f" {k}={v}" for k, v in options.items())
        res[label] = precision_fidelity(model, batch, [method], options=options, reference=model)[method]
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_arm_steps(args, out: Path, arm: str) -> dict:
    """One arm's trainer steps in a fresh process (each builds and frees its own vLLM engine)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; expected one of {list(ARMS)}")
    env = {
        **os.environ,
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    cmd = [
        sys.executable,
        "-m",
        "oarl.cli",
        "gpu-check",
        "--arm",
        arm,
        "--model",
        args.model,
        "--out",
        str(out),
        "--steps",
        str(args.steps),
        "--train-rows",
        str(args.train_rows),
        "--batch",
        str(args.batch),
        "--num-generations",
        str(args.num_generations),
        "--noise-std",
        str(args.noise_std),
        "--max-completion-length",
        str(args.max_completion_length),
        "--vllm-gpu-memory-utilization",
        str(args.vllm_gpu_memory_utilization),
    ]
    cmd += ["--no-vllm"] if args.no_vllm else []
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    path = out / f"steps_{arm}.json"
    if proc.returncode != 0 or not path.is_file():
        tail = (proc.stdout + proc.stderr)[-4000:]
        print(f"arm {arm} failed (exit {proc.returncode}):\n{tail}", file=sys.stderr)
        return {"error": tail}
    return json.loads(path.read_text())


def train_arm(args, out: Path) -> int:
    """(In the child process.) Run ``--steps`` steps of one arm and write its step times. With ``--cpu`` (tests)
    it runs on the CPU in float32."""
    import torch
    from transformers import TrainerCallback

    from oarl.integrations.trl.trainer import OARConfig
    from oarl.lab.testbed.train import TaskArguments, build_trainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, *a, **k):
            sync()
            self._t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            sync()
            self.seconds.append(time.perf_counter() - self._t0)

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    task = TaskArguments(
        task="gsm8k", model_path=args.model, max_rows=args.train_rows, data_dir=args.data_dir
    )
    config = OARConfig(
        output_dir=str(out / f"run_{args.arm}"),
        oar_method=ARMS[args.arm],
        oar_noise_std=args.noise_std,
        oar_max_batch_tokens=8192,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        learning_rate=1e-6,
        bf16=not args.cpu,
        use_cpu=args.cpu,
        model_init_kwargs={"dtype": "float32" if args.cpu else "bfloat16"},
        gradient_checkpointing=not args.cpu,
        use_vllm=not args.no_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization,
        vllm_max_model_length=args.max_completion_length + 512,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        disable_tqdm=True,
    )
    trainer, _ = build_trainer(task, config)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    record = {
        "step_seconds": timer.seconds,
        "scorer_seconds": [h.get("oar/scorer_seconds", 0.0) for h in logs],
        "scored_frac": [h.get("oar/scored_frac", 0.0) for h in logs],
    }
    (out / f"steps_{args.arm}.json").write_text(json.dumps(record))
    return 0


def format_steps(steps: dict[str, dict]) -> str:
    """Markdown: per arm, each step's seconds, the scorer's, and the last step's ratio to GRPO's."""
    base = steps.get("grpo", {}).get("step_seconds")
    lines = [
        "| arm | step seconds | scorer seconds | scored frac | last step / GRPO |",
        "|---|---|---|---|---|",
    ]
    for arm, r in steps.items():
        if "error" in r:
            lines.append(f"| {arm} | failed | | | |")
            continue
        ratio = f"{r['step_seconds'][-1] / base[-1]:.2f}x" if base else "-"
        fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        lines.append(
            f"| {arm} | {fmt(r['step_seconds'])} | {fmt(r['scorer_seconds'])} | {fmt(r['scored_frac'])} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
