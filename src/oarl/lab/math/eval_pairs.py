"""Prompt/completion pairs from ``oarl eval`` generations: a model's own completions, ready to be scored.

``oarl attribute --data`` and ``oarl fidelity --data`` score ``prompt``/``completion`` JSONL rows. ``oarl eval``
stores the question and the completion; this rebuilds the exact prompt text the model saw (the same
:class:`~oarl.lab.math.prompts.PromptTemplate` and chat template) and keeps the completions with a final-answer
span whose length in tokens lies in a range. ``python -m oarl.lab.math.eval_pairs GEN.jsonl --model NAME --out F``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oarl.lab.math.easy_arith import INSTRUCTION, SYSTEM_PROMPT
from oarl.lab.math.prompts import PromptTemplate, build_prompt, render_prompt
from oarl.lab.math.rewards import extract_answer
from oarl.lab.models.resolve import resolve_model
from oarl.utils.atomic import atomic_write_text
from oarl.utils.checkpoint import load_tokenizer


def eval_pairs(
    rows: list[dict], tokenizer, template: PromptTemplate, min_tokens: int = 0, max_tokens: int = 10**9
) -> list[dict]:
    """Rows with an answer span and ``min_tokens <= completion tokens <= max_tokens``, as prompt/completion."""
    out = []
    for r in rows:
        if extract_answer(r["completion"]) is None:
            continue
        n = len(tokenizer(r["completion"], add_special_tokens=False).input_ids)
        if not min_tokens <= n <= max_tokens:
            continue
        prompt = render_prompt(build_prompt(r["question"], tokenizer, template), tokenizer)
        out.append({"prompt": prompt, "completion": r["completion"], "tokens": n,
                    "correct": r.get("correct"), "row": r.get("row"), "reference": r.get("reference")})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m oarl.lab.math.eval_pairs", description=__doc__.splitlines()[0]
    )
    ap.add_argument("generations", help="generations.jsonl written by oarl eval (default prompt template)")
    ap.add_argument("--model", required=True, help="the model folder or short name (its tokenizer)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-tokens", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=10**9)
    ap.add_argument("--limit", type=int, help="keep the first N pairs")
    ap.add_argument("--instruction", help="the --instruction oarl eval was given, if any")
    ap.add_argument("--system-prompt", help="the --system_prompt oarl eval was given, if any")
    ap.add_argument(
        "--easy-arith", action="store_true", help="the easy_arith prompt (its system + instruction)"
    )
    args = ap.parse_args(argv)
    tok = load_tokenizer(resolve_model(args.model))
    given = {"instruction": args.instruction, "system_prompt": args.system_prompt}
    if args.easy_arith:
        given = {"instruction": INSTRUCTION, "system_prompt": SYSTEM_PROMPT}
    template = PromptTemplate(**{k: v for k, v in given.items() if v is not None})
    with Path(args.generations).open() as f:
        rows = [json.loads(line) for line in f if line.strip()]
    pairs = eval_pairs(rows, tok, template, args.min_tokens, args.max_tokens)[: args.limit]
    atomic_write_text(args.out, "".join(json.dumps(p) + "\n" for p in pairs))
    print(f"wrote {len(pairs)} of {len(rows)} completions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
