"""Word-problem operations: the flag task's decision in English, for a pretrained LM with a BPE tokenizer.

Words in the question choose the operation ("gets 5 more" = add, "gives 5 away" = subtract); the completion
states the operation before computing, then gives the answer in the one form the span finder and the reward
both read (:data:`ANSWER_FINDERS`)::

    prompt:      "Question: Tom has 7 apples. Tom gets 5 more apples. How many apples does Tom have now?\\nAnswer:"
    completion:  " Operation: add. 7 + 5 = 12. The answer is 12."
    roles:                    CCC   . C . CC                AA     # C causal, A answer, . format

The warm start (SFT) sees completions whose operation follows the question's words only with probability
``fidelity`` (the other operation otherwise; the sum and the answer always follow the operation written), so
the warm policy computes reliably and *decides* with entropy ~H(fidelity) at the operation word: the one
token RL must learn to get right, and the one an oracle credit arm weights (:func:`decision_char_spans`).
``chatter`` inserts sentences after the operation (``" Tom smiles."``) that the answer never reads.

The held-out split is disjoint by construction, as in :mod:`oarl.lab.math.easy_arith`: a question belongs to the
held-out split when a hash of its text falls in one bucket of :data:`TEST_BUCKETS`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from oarl.batch.spans import find_answer

# The names, items and held-out split (one question in TEST_BUCKETS, by a stable hash) of the easy word problems.
from oarl.lab.math.easy_arith import ITEMS, NAMES, TEST_BUCKETS, split_of  # noqa: F401  (re-exported)

#: The decisive words of the question, per operation ({b} is the second number, {item} the item).
PHRASES = {
    "add": ("gets {b} more {item}", "finds {b} more {item}", "buys {b} more {item}"),
    "subtract": ("gives {b} {item} away", "loses {b} {item}", "sells {b} {item}"),
}
OPS = {"add": "+", "subtract": "-"}
CHATTER = (
    "{name} smiles.",
    "It is a sunny day.",
    "{name} counts carefully.",
    "The {item} are nice.",
    "{name} likes {item}.",
    "This is easy.",
)
CHATTER_LEVELS = {"none": 0, "some": 1, "heavy": 3}
#: New tokens a completion needs at each chatter level (SmolLM2's tokenizer: the longest SFT completion is 23,
#: 29 and 40 tokens with EOS): the held-out gate's budget and the recipe's ``max_completion_length`` (no chatter;
#: a chatter study passes its level's with ``--sweep max_completion_length=N``).
COMPLETION_BUDGET = {"none": 32, "some": 48, "heavy": 64}
#: The answer's one marked form: what the span finder locates and the reward parses.
ANSWER_FINDERS = ("answer_is",)
PROMPT_END = "\nAnswer:"

#: The completion's operation, the question's operation phrases and an equation (wordop2 parses with them too).
OP_RE = re.compile(r"Operation: (add|subtract)\.")
PHRASE_RE = {
    op: re.compile("|".join(p.replace("{b}", r"\d+").replace("{item}", r"\w+") for p in ps))
    for op, ps in PHRASES.items()
}
EQ_RE = re.compile(r"(-?\d+) ([+\-]) (-?\d+) = (-?\d+)\.")


@dataclass(frozen=True)
class WordOpConfig:
    """Task knobs; deterministic for ``seed``. Numbers stay small: ``a`` in 2..``max_a``, ``b`` in 1..a-1."""

    fidelity: float = 0.65  # P(SFT data writes the operation the question's words name)
    chatter: str = "none"  # none / some / heavy: 0, 1 or 3 sentences after the operation
    max_a: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fidelity <= 1.0:
            raise ValueError(f"fidelity must be in [0, 1], got {self.fidelity}")
        if self.chatter not in CHATTER_LEVELS:
            raise ValueError(f"chatter must be one of {sorted(CHATTER_LEVELS)}, got {self.chatter!r}")
        if not 3 <= self.max_a <= 50:
            raise ValueError(
                f"max_a must be in 3..50 (small numbers a 135M model computes), got {self.max_a}"
            )


@dataclass(frozen=True)
class WordOpProblem:
    prompt: str
    completion: str  # gold completion, or the SFT sample when made for SFT
    answer: int  # gold answer (what RL rewards); for SFT rows, the answer of the completion written
    op: str  # the operation the question's words name
    a: int
    b: int


def _question(r: random.Random, cfg: WordOpConfig) -> tuple[str, str, int, int, str, str]:
    name, item, op = r.choice(NAMES), r.choice(ITEMS), r.choice(tuple(OPS))
    a = r.randint(2, cfg.max_a)
    b = r.randint(1, a - 1)
    phrase = r.choice(PHRASES[op]).format(b=b, item=item)
    q = f"{name} has {a} {item}. {name} {phrase}. How many {item} does {name} have now?"
    return q, op, a, b, name, item


def write_completion(op: str, a: int, b: int, chatter: list[str]) -> tuple[str, int]:
    """The completion that states ``op``, computes it and answers; its answer."""
    v = a + b if op == "add" else a - b
    middle = "".join(f" {s}" for s in chatter)
    return f" Operation: {op}.{middle} {a} {OPS[op]} {b} = {v}. The answer is {v}.", v


def distinct_questions(
    r: random.Random, split: str, max_a: int, draw: Callable[[random.Random], tuple]
) -> Iterator:
    """``draw(r)`` over and over, yielding each draw whose question text (its first item) is new and falls in
    ``split``; the consumer may draw more from ``r`` between yields (the order of draws is the data)."""
    seen, made, misses = set(), 0, 0
    while True:
        drawn = draw(r)
        q = drawn[0]
        if q in seen or split_of(q) != split:
            misses += 1
            if misses > 100_000:
                raise ValueError(f"no more distinct {split} problems with max_a={max_a} ({made} made)")
            continue
        misses = 0
        seen.add(q)
        made += 1
        yield drawn


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def generate_problems(
    n: int, config: WordOpConfig | None = None, split: str = "train", for_sft: bool = False
) -> list[WordOpProblem]:
    """``n`` distinct problems of ``split`` (``train`` / ``test``), deterministic for ``config.seed``.

    ``for_sft``: the operation written follows the question with probability ``fidelity``."""
    cfg = config or WordOpConfig()
    check_split(split)
    r, out = random.Random(cfg.seed), []
    for q, op, a, b, name, item in islice(
        distinct_questions(r, split, cfg.max_a, lambda r: _question(r, cfg)), n
    ):
        chatter = [r.choice(CHATTER).format(name=name, item=item) for _ in range(CHATTER_LEVELS[cfg.chatter])]
        written = op
        if for_sft and r.random() >= cfg.fidelity:
            written = "subtract" if op == "add" else "add"
        comp, v = write_completion(written, a, b, chatter)
        gold = a + b if op == "add" else a - b
        out.append(WordOpProblem(f"Question: {q}{PROMPT_END}", comp, v if for_sft else gold, op, a, b))
    return out


def extract_answer(completion: str) -> int | None:
    """The integer of the final ``The answer is N.``, the span :mod:`oarl.batch.spans` finds (else None)."""
    hit = find_answer(completion, ANSWER_FINDERS)
    if hit is None:
        return None
    try:
        return int(completion[hit[1] : hit[2]])
    except ValueError:
        return None


def wordop_reward(prompts: list, completions: list, answer: list, **kwargs) -> list[float]:
    """TRL reward: 1.0 iff the final ``The answer is N`` equals the gold ``answer`` column."""
    out = []
    for c, gold in zip(completions, answer, strict=True):
        text = c if isinstance(c, str) else c[-1]["content"]
        out.append(1.0 if extract_answer(text) == int(gold) else 0.0)
    return out


def question_op(prompt: str) -> str | None:
    """The operation the question's words name (``add`` / ``subtract``), or None when no phrase matches."""
    for op, rx in PHRASE_RE.items():
        if rx.search(prompt):
            return op
    return None


def question_numbers(prompt: str) -> tuple[int, int] | None:
    """``(a, b)``: the first two numbers of the question."""
    nums = [int(x) for x in re.findall(r"\d+", prompt)]
    return (nums[0], nums[1]) if len(nums) >= 2 else None


def parse_completion(completion: str) -> dict:
    """Where the parts of a (model-written) completion are: ``op`` (word, span), ``eq`` (match), answer."""
    out: dict = {"op": None, "op_span": None, "eq": None}
    if m := OP_RE.search(completion):
        out["op"], out["op_span"] = m.group(1), m.span(1)
        if eq := EQ_RE.search(completion, m.end()):
            out["eq"] = eq
    return out


def executed_correctly(prompt: str, completion: str) -> bool | None:
    """Whether the completion computes the operation it chose on the question's numbers (the equation and the
    answer); None when it has no operation, equation or answer to check."""
    p = parse_completion(completion)
    eq, ans = p["eq"], extract_answer(completion)
    if p["op"] is None or eq is None or ans is None:
        return None
    a, sign, b, v = int(eq.group(1)), eq.group(2), int(eq.group(3)), int(eq.group(4))
    want = a + b if p["op"] == "add" else a - b
    return (a, b) == question_numbers(prompt) and sign == OPS[p["op"]] and v == want and ans == v


def decision_choice_share(prompt: str, completion: str) -> float:
    """1.0 when the completion's operation is the one the question's words name, else 0.0 (the gate's ``choice``)."""
    return float(parse_completion(completion)["op"] == question_op(prompt))
