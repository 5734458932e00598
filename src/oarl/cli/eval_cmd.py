"""pass@1 / pass@k of a local model: ``oarl eval --model PATH --data FILE|gsm8k|math500|arith [--n 8 --k 1,8]``.

Generates ``n`` completions per question (transformers ``generate``, batched; vLLM when it is installed and
a GPU is present), grades each with :func:`oarl.lab.math.rewards.check_answer` (final answer vs reference with
math-verify) and reports the unbiased pass@k. Writes ``<out_dir>/generations.jsonl`` (every completion with
its extracted answer and verdict) and ``<out_dir>/summary.json``. ``--data arith`` evaluates a demo
checkpoint on the demo's held-out problems (prompts used as they are).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from oarl.cli._args import check_config_keys, numbers, read_config, usage_error
from oarl.lab.models.resolve import resolve_model
from oarl.utils.atomic import atomic_write_json, new_run_dir

#: What Ctrl-C outside a clean stop point leaves, and how to go on (printed by ``oarl``; see
#: :func:`oarl.utils.interrupt.interrupted_message`).
RESUME_HINT = "no summary was written (its run folder is removed); run again: {command}"


LONG_PROMPTS = ("skip", "truncate", "error")


@dataclass
class EvalArguments:
    model: str = field(
        metadata={"help": "local model folder (weights + tokenizer) or short name (smollm2-135m)"}
    )
    data: str = field(
        metadata={"help": "gsm8k (test) | gsm8k_train | math500 | arith | a .jsonl/.parquet file"}
    )
    n: int = field(default=1, metadata={"help": "completions per question"})
    k: str = field(default="1", metadata={"help": "comma list of k for pass@k (each <= n)"})
    temperature: float = field(
        default=0.6, metadata={"help": "sampling temperature; 0 = greedy (needs n = 1)"}
    )
    top_p: float = 0.95
    max_new_tokens: int = 1024
    batch_size: int = field(
        default=32, metadata={"help": "sequences per generate call (transformers backend)"}
    )
    limit: int | None = field(default=None, metadata={"help": "evaluate the first N questions only"})
    out_dir: str | None = field(default=None, metadata={"help": "default runs/eval/<model>_<data>/<time>"})
    data_dir: str | None = field(default=None, metadata={"help": "benchmark folder (default ../shared/data)"})
    question_field: str = "question"
    answer_field: str = "answer"
    prompt_style: str = field(default="auto", metadata={"help": "auto | chat | plain | raw (arith: raw)"})
    instruction: str | None = None
    system_prompt: str | None = None
    plain_format: str | None = None
    reward_timeout: int = field(default=5, metadata={"help": "math-verify timeout per call, seconds"})
    backend: str = field(default="auto", metadata={"help": "auto (vLLM if installed and a GPU) | hf | vllm"})
    dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU) | bfloat16 | float32"}
    )
    long_prompts: str = field(
        default="skip",
        metadata={
            "help": "prompts whose tokens + max_new_tokens exceed the model's context: skip | truncate "
            "(keep the prompt's last tokens) | error; counted in the summary either way"
        },
    )
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.long_prompts not in LONG_PROMPTS:
            raise ValueError(f"--long_prompts must be one of {LONG_PROMPTS}, got {self.long_prompts!r}")

    def ks(self) -> list[int]:
        ks = sorted(set(numbers(self.k, int)))
        if not ks or ks[0] < 1 or ks[-1] > self.n:
            raise ValueError(f"every k must be in 1..n={self.n}, got --k {self.k}")
        return ks


def main(argv: list[str]) -> int:
    from trl import TrlParser

    parser = TrlParser([EvalArguments], prog="oarl eval", description=__doc__.splitlines()[0])
    try:
        path, from_file = read_config(argv)
        if path is not None:
            check_config_keys(from_file, {f.name for f in fields(EvalArguments)}, path, "eval")
    except (ValueError, FileNotFoundError) as e:
        return usage_error("eval", e)
    (args,) = parser.parse_args_and_config(argv)
    try:
        args.model = resolve_model(args.model)
        summary = run(args)
    except (ValueError, FileNotFoundError) as e:  # FileNotFoundError: a short name not fetched yet
        return usage_error("eval", e)
    ks = " ".join(f"pass@{k} {summary[f'pass@{k}']:.4f}" for k in args.ks())
    long = summary["long_prompts"]
    done = {"skip": "skipped", "truncate": "truncated"}.get(long["policy"], "")
    note = (
        f"; {long['count']} prompt(s) over the {long['context']}-token context {done}"
        if long["count"]
        else ""
    )
    print(f"{ks}  ({summary['rows']} questions, n={args.n}{note}) -> {summary['out_dir']}")
    return 0


def model_context(model: str) -> int | None:
    """The model's context in tokens (``max_position_embeddings`` of its config); ``None`` when it has none.
    A tokenizer's ``model_max_length`` is not used: it is often a default unrelated to the model."""
    from transformers import AutoConfig

    try:
        n = getattr(AutoConfig.from_pretrained(model), "max_position_embeddings", None)
    except (OSError, ValueError):  # a folder without a readable config (e.g. a tokenizer only)
        n = None
    return n


def fit_context(
    texts: list[str], tok, context: int | None, max_new_tokens: int, policy: str, add_special_tokens: bool
) -> tuple[list[str], list[int], list[int]]:
    """(texts to generate from, indices of the rows kept, indices of the rows over the context).

    A row is over the context when its prompt tokens plus ``max_new_tokens`` exceed ``context``: generation
    would run past the positions the model was trained on. ``skip`` drops such rows, ``truncate`` keeps each
    prompt's last ``context - max_new_tokens`` tokens (the end holds the question and the generation prompt),
    ``error`` raises."""
    if context is None:
        return texts, list(range(len(texts))), []
    budget = context - max_new_tokens
    if budget < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a {context}-token context"
        )
    ids = tok(texts, add_special_tokens=add_special_tokens)["input_ids"]
    long = [i for i, x in enumerate(ids) if len(x) > budget]
    if long and policy == "error":
        raise ValueError(
            f"{len(long)} prompt(s) exceed the model's {context}-token context with max_new_tokens="
            f"{max_new_tokens} (first: row {long[0]}, {len(ids[long[0]])} tokens); use --long_prompts skip|truncate"
        )
    if policy == "skip":
        over = set(long)
        keep = [i for i in range(len(texts)) if i not in over]
        return [texts[i] for i in keep], keep, long
    out = list(texts)
    for i in long:  # decoding ids back is exact for the byte-level BPE tokenizers this targets
        out[i] = tok.decode(ids[i][-budget:])
    return out, list(range(len(texts))), long


def load_questions(args: EvalArguments) -> tuple[list[str], list[str], str]:
    """Questions, reference answers and the prompt style to use (``arith`` prompts are complete already)."""
    if args.data == "arith":
        from oarl.lab.testbed.tasks import arith

        problems = arith.generate_problems(
            args.limit or 200, arith.ArithConfig(seed=30_000)
        )  # demo's held-out
        style = "raw" if args.prompt_style == "auto" else args.prompt_style
        return [p.prompt for p in problems], [str(p.answer) for p in problems], style
    from oarl.lab.math.data import load_dataset_spec

    ds = load_dataset_spec(args.data, args.data_dir, args.question_field, args.answer_field, args.limit)
    return list(ds["question"]), list(ds["answer"]), args.prompt_style


def run(args: EvalArguments) -> dict:
    """Evaluate; returns the summary (also written to ``summary.json``)."""
    from oarl.lab.math.prompts import PromptTemplate, build_prompt, render_prompt
    from oarl.utils.checkpoint import load_tokenizer

    ks = args.ks()
    questions, references, style = load_questions(args)
    tok = load_tokenizer(args.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    given = {
        "instruction": args.instruction,
        "system_prompt": args.system_prompt,
        "plain_format": args.plain_format,
    }
    template = PromptTemplate(style=style, **{k: v for k, v in given.items() if v is not None})
    prompts = [build_prompt(q, tok, template) for q in questions]
    chat = bool(prompts) and not isinstance(prompts[0], str)
    texts = [render_prompt(p, tok) for p in prompts]
    context = model_context(args.model)
    texts, keep, long = fit_context(texts, tok, context, args.max_new_tokens, args.long_prompts, not chat)
    questions, references = [questions[i] for i in keep], [references[i] for i in keep]
    backend = _backend(args.backend)
    t0 = time.perf_counter()
    if backend == "vllm":
        completions = _generate_vllm(args, tok, texts, add_special_tokens=not chat)
    else:
        completions = _generate_hf(args, tok, texts, add_special_tokens=not chat)
    t1 = time.perf_counter()
    out = Path(args.out_dir) if args.out_dir else new_run_dir(Path("runs/eval") / _run_name(args))
    existed = out.exists() and args.out_dir is not None
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _grade(
            args, out, questions, references, completions, ks, template, tok, long, context, backend, t0, t1
        )
    except BaseException:  # Ctrl-C or an error while grading: no half-written run folder of ours is left
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _grade(args, out, questions, references, completions, ks, template, tok, long, context, backend, t0, t1):
    """Grade every completion into ``out/generations.jsonl``; the summary, written last to ``out/summary.json``."""
    from tqdm.auto import tqdm

    from oarl.lab.math.evaluation import mean_pass_at_k
    from oarl.lab.math.rewards import check_answer

    correct_counts, gradable, found = [], 0, 0
    with (out / "generations.jsonl").open("w") as f:
        bar = tqdm(total=len(questions) * args.n, desc="grade", disable=not args.progress, unit="seq")
        for i, (question, ref, outs) in enumerate(zip(questions, references, completions, strict=True)):
            verdicts = [check_answer(c, ref, args.reward_timeout) for c in outs]
            for j, (c, v) in enumerate(zip(outs, verdicts, strict=True)):
                row = {"row": i, "sample": j, "question": question, "reference": ref, "completion": c}
                f.write(
                    json.dumps({**row, "answer": v.answer, "correct": v.correct, "reason": v.reason}) + "\n"
                )
            found += sum(v.answer is not None for v in verdicts)
            if verdicts[0].correct is not None:  # None: the reference itself does not parse
                gradable += 1
                correct_counts.append(sum(bool(v.correct) for v in verdicts))
            bar.update(len(outs))
        bar.close()
    summary = {
        "model": args.model,
        "data": args.data,
        "rows": len(questions),
        "ungradable_rows": len(questions) - gradable,
        "long_prompts": {"count": len(long), "policy": args.long_prompts, "context": context, "rows": long},
        **{f"pass@{k}": mean_pass_at_k(correct_counts, args.n, k) if correct_counts else 0.0 for k in ks},
        "answer_rate": found / max(1, len(questions) * args.n),
        "backend": backend,
        "prompt_style": template.resolve(tok),
        "seconds_generate": t1 - t0,
        "seconds_grade": time.perf_counter() - t1,
        "out_dir": str(out),
        "args": asdict(args),
    }
    atomic_write_json(out / "summary.json", summary, indent=2)  # never a half-written summary
    return summary


def _run_name(args: EvalArguments) -> str:
    data = Path(args.data).stem if Path(args.data).suffix else args.data
    return f"{Path(args.model).resolve().name}_{data}"


def _backend(choice: str) -> str:
    import importlib.util

    import torch

    if choice not in ("auto", "hf", "vllm"):
        raise ValueError(f"backend must be auto, hf or vllm, got {choice!r}")
    has_vllm = importlib.util.find_spec("vllm") is not None
    if choice == "vllm" and not (has_vllm and torch.cuda.is_available()):
        raise RuntimeError("backend 'vllm' needs the vllm package and a CUDA GPU")
    if choice == "auto":
        return "vllm" if has_vllm and torch.cuda.is_available() else "hf"
    return choice


def _generate_hf(args: EvalArguments, tok, texts: list[str], add_special_tokens: bool) -> list[list[str]]:
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    from oarl.lab.math.evaluation import sample_completions

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dtype == "auto":
        dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device)
    set_seed(args.seed)
    return sample_completions(
        model,
        tok,
        texts,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        temperature=args.temperature,
        top_p=args.top_p,
        add_special_tokens=add_special_tokens,
        progress=args.progress,
    )


def _generate_vllm(args: EvalArguments, tok, texts: list[str], add_special_tokens: bool) -> list[list[str]]:
    from vllm import LLM, SamplingParams

    ids = tok(texts, add_special_tokens=add_special_tokens)["input_ids"]  # the exact tokens hf would feed
    llm = LLM(model=args.model, dtype=args.dtype, seed=args.seed)
    params = SamplingParams(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p if args.temperature > 0 else 1.0,
        max_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    outputs = llm.generate([{"prompt_token_ids": p} for p in ids], params, use_tqdm=args.progress)
    return [[o.text for o in out.outputs] for out in outputs]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
