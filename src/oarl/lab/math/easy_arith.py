"""Easy arithmetic word problems: a math task a ~100M-parameter instruct model can partly solve.

GSM8K is out of SmolLM2-135M's reach (see docs/real_model.md), so GRPO on it would see all-zero rewards.
These one- and two-step problems with small numbers give sampled pass rates spread between 0 and 1, i.e.
groups with reward variance, which is what GRPO and OAR need. Each problem is a ``question`` / ``answer``
record like the GSM8K loader's, so ``oarl eval --data FILE`` and ``oarl train --task jsonl`` read the files
:func:`write_splits` writes.

The held-out split is disjoint by construction: a problem belongs to ``test`` when a hash of its text falls in
one bucket, so no held-out question ever occurs in ``train`` whatever the sizes or seeds.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from oarl.utils.atomic import atomic_write_text

NAMES = ("Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Leo", "Emma", "Max", "Zoe")
ITEMS = ("apples", "pencils", "marbles", "cookies", "stickers", "books", "coins", "cards")
KINDS = ("add", "sub", "mul", "add_sub", "div")
TEST_BUCKETS = 5  # one problem in five is held out

# The prompt that got SmolLM2-135M closest to a usable pass rate (docs/real_model.md, "The task"): two worked
# examples in the system turn and a format reminder after the question; the default \boxed{} prompt gave
# 2% at level 1. Pass them as oarl eval / oarl train --system_prompt and --instruction.
SYSTEM_PROMPT = (
    "Example. Question: Ann has 2 pens. Ann gets 3 more pens. How many pens does Ann have now?\n"
    "Answer: 2 + 3 = 5. The answer is 5.\n"
    "Example. Question: Bob has 4 bags with 2 cups in each bag. How many cups does Bob have in total?\n"
    "Answer: 4 * 2 = 8. The answer is 8."
)
INSTRUCTION = 'Answer in the same way: one calculation, then "The answer is N."'


# Number ranges per level: 1 = single digits (what a 135M model gets partly right), 2 = up to 40.
RANGES = {
    1: {"add": (1, 9), "sub": (3, 10), "mul": (2, 5), "add_sub": (2, 6), "div": (2, 5, 3)},
    2: {"add": (2, 30), "sub": (5, 40), "mul": (2, 9), "add_sub": (3, 20), "div": (2, 9, 6)},
}


def _add(r: random.Random, name: str, item: str, lv: dict) -> tuple[str, int]:
    a, b = r.randint(*lv["add"]), r.randint(*lv["add"])
    return f"{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?", a + b


def _sub(r: random.Random, name: str, item: str, lv: dict) -> tuple[str, int]:
    a = r.randint(*lv["sub"])
    b = r.randint(1, a - 1)
    return f"{name} has {a} {item} and gives {b} of them away. How many {item} does {name} have left?", a - b


def _mul(r: random.Random, name: str, item: str, lv: dict) -> tuple[str, int]:
    a, b = r.randint(*lv["mul"]), r.randint(*lv["mul"])
    return (
        f"{name} has {a} boxes with {b} {item} in each box. How many {item} does {name} have in total?",
        a * b,
    )


def _add_sub(r: random.Random, name: str, item: str, lv: dict) -> tuple[str, int]:
    a, b = r.randint(*lv["add_sub"]), r.randint(*lv["add_sub"])
    c = r.randint(1, a + b - 1)
    q = f"{name} has {a} {item}, buys {b} more and then gives {c} to a friend. How many {item} does {name} have now?"
    return q, a + b - c


def _div(r: random.Random, name: str, item: str, lv: dict) -> tuple[str, int]:
    lo, hi, friends = lv["div"]
    each, k = r.randint(lo, hi), r.randint(2, friends)
    return (
        f"{name} shares {each * k} {item} equally among {k} friends. How many {item} does each friend get?",
        each,
    )


MAKERS: dict[str, Callable[[random.Random, str, str, dict], tuple[str, int]]] = {
    "add": _add, "sub": _sub, "mul": _mul, "add_sub": _add_sub, "div": _div,
}  # fmt: skip


def split_of(question: str) -> str:
    """``test`` for one question text in :data:`TEST_BUCKETS`, else ``train`` (a stable hash, not ``hash()``)."""
    bucket = int.from_bytes(hashlib.sha256(question.encode()).digest()[:4], "big") % TEST_BUCKETS
    return "test" if bucket == 0 else "train"


def problems(split: str, kinds: tuple[str, ...] = KINDS, seed: int = 0, level: int = 1) -> Iterator[dict]:
    """An endless stream of distinct ``{"question", "answer", "kind"}`` problems of one split, kinds in turn.

    Small levels run out of distinct problems: ask for at most a few hundred per kind at level 1."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    unknown = [k for k in kinds if k not in MAKERS]
    if unknown or not kinds:
        raise ValueError(f"unknown problem kind(s) {unknown}; expected some of {KINDS}")
    if level not in RANGES:
        raise ValueError(f"level must be one of {sorted(RANGES)}, got {level}")
    r, seen, i, misses = random.Random(seed), set(), 0, 0
    while True:
        kind = kinds[i % len(kinds)]
        question, answer = MAKERS[kind](r, r.choice(NAMES), r.choice(ITEMS), RANGES[level])
        if question in seen or split_of(question) != split:
            misses += 1
            if misses > 100_000:  # the level's number ranges hold no more distinct problems of this kind
                raise ValueError(f"no more distinct {kind!r} problems at level {level} ({len(seen)} made)")
            continue
        misses = 0
        seen.add(question)
        i += 1
        yield {"question": question, "answer": str(answer), "kind": kind}


def generate(n: int, split: str, kinds: tuple[str, ...] = KINDS, seed: int = 0, level: int = 1) -> list[dict]:
    """The first ``n`` problems of :func:`problems` (the same list for the same arguments)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    stream = problems(split, kinds, seed, level)
    return [next(stream) for _ in range(n)]


def write_splits(
    folder: str | Path, n_train: int, n_test: int, seed: int = 0, level: int = 1
) -> dict[str, Path]:
    """``easy_arith_train.jsonl`` and ``easy_arith_test.jsonl`` in ``folder`` (atomic writes); their paths."""
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        path = Path(folder) / f"easy_arith_{split}.jsonl"
        atomic_write_text(
            path, "".join(json.dumps(p) + "\n" for p in generate(n, split, seed=seed, level=level))
        )
        out[split] = path
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m oarl.lab.math.easy_arith", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--out", required=True, help="folder for easy_arith_{train,test}.jsonl")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", type=int, default=1, help="1: single-digit numbers; 2: up to 40")
    args = ap.parse_args(argv)
    for path in write_splits(args.out, args.train, args.test, args.seed, args.level).values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
