"""Word problems with two operations: :mod:`~oarl.lab.testbed.tasks.wordop` with two decisions a completion.

The question names two operations in a row, each with one of wordop's phrases; the completion states and
computes each in turn, the second starting from the first's result, then answers (roles: C causal,
A answer, the rest format)::

    prompt:      "Question: Tom has 7 apples. Tom gets 5 more apples. Then Tom gives 3 apples away. How many
                  apples does Tom have now?\\nAnswer:"
    completion:  " Operation: add. 7 + 5 = 12. Operation: subtract. 12 - 3 = 9. The answer is 9."
    roles:                    CCC    C     CC             CCCCCCCC     C     C                A

The warm start's SFT data writes *each* operation as the question's words name it with probability
``fidelity``, independently (the other operation otherwise; the equations and the answer always follow what is
written), so the warm policy has two uncertain decisions, both weighted by an oracle arm. ``chatter`` puts its
sentences after the *first* operation only (where wordop puts them), so a level means what it does for wordop:
0, 1 or 3 sentences a completion.

Names, items, phrases, chatter, the answer form and the held-out split (a hash of the question text) are
wordop's, imported, not copied.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import islice

from oarl.lab.testbed.tasks.wordop import (  # noqa: F401  (ANSWER_FINDERS, CHATTER_LEVELS, ...: re-exported)
    ANSWER_FINDERS,
    CHATTER,
    CHATTER_LEVELS,
    EQ_RE,
    ITEMS,
    NAMES,
    OP_RE,
    OPS,
    PHRASE_RE,
    PHRASES,
    PROMPT_END,
    TEST_BUCKETS,
    WordOpConfig,
    check_split,
    distinct_questions,
    extract_answer,
    split_of,
)

#: New tokens a completion needs at each chatter level, measured with SmolLM2's tokenizer (its tokenizer.json, no
#: weights) over 3200 SFT rows (the warm start's, fidelity 0.65) and 3200 gold train and held-out problems per
#: level: the longest is 38, 44 and 56 tokens with EOS (wordop: 23, 29 and 41), so wordop's budgets plus 16
#: keep at least its margin (9 tokens). The held-out gate's budget and the recipe's ``max_completion_length``
#: (no chatter; a chatter study passes its level's with ``--sweep max_completion_length=N``).
COMPLETION_BUDGET = {"none": 48, "some": 64, "heavy": 80}


@dataclass(frozen=True)
class WordOp2Config:
    """Task knobs; deterministic for ``seed``. ``a`` in 3..``max_a``, ``b, c >= 1`` with ``b + c < a``, so that
    every intermediate and answer is >= 1 whichever operations a completion writes."""

    fidelity: float = 0.65  # P(SFT data writes an operation as the question's words name it), per operation
    chatter: str = "none"  # none / some / heavy: 0, 1 or 3 sentences after the first operation
    max_a: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        # wordop's checks and messages (its config is built only to validate; nothing of it is kept)
        WordOpConfig(self.fidelity, self.chatter, self.max_a, self.seed)


@dataclass(frozen=True)
class WordOp2Problem:
    prompt: str
    completion: str  # gold completion, or the SFT sample when made for SFT
    answer: int  # gold answer (what RL rewards); for SFT rows, the answer of the completion written
    ops: tuple[str, str]  # the operations the question's words name, in order
    a: int
    b: int
    c: int


def _question(r: random.Random, cfg: WordOp2Config) -> tuple[str, tuple[str, str], int, int, int, str, str]:
    name, item = r.choice(NAMES), r.choice(ITEMS)
    ops = (r.choice(tuple(OPS)), r.choice(tuple(OPS)))
    a = r.randint(3, cfg.max_a)
    b = r.randint(1, a - 2)
    c = r.randint(1, a - 1 - b)  # b + c < a: a - b - c >= 1, the smallest any written pair reaches
    p1 = r.choice(PHRASES[ops[0]]).format(b=b, item=item)
    p2 = r.choice(PHRASES[ops[1]]).format(b=c, item=item)
    q = f"{name} has {a} {item}. {name} {p1}. Then {name} {p2}. How many {item} does {name} have now?"
    return q, ops, a, b, c, name, item


def _apply(op: str, x: int, y: int) -> int:
    return x + y if op == "add" else x - y


def write_completion(ops: tuple[str, str], a: int, b: int, c: int, chatter: list[str]) -> tuple[str, int]:
    """The completion that states and computes ``ops[0]`` on (a, b), then ``ops[1]`` on (its result, c), and
    answers; its answer. ``chatter`` sentences follow the first operation."""
    v1 = _apply(ops[0], a, b)
    v2 = _apply(ops[1], v1, c)
    middle = "".join(f" {s}" for s in chatter)
    return (
        f" Operation: {ops[0]}.{middle} {a} {OPS[ops[0]]} {b} = {v1}."
        f" Operation: {ops[1]}. {v1} {OPS[ops[1]]} {c} = {v2}. The answer is {v2}.",
        v2,
    )


def _flip(op: str) -> str:
    return "subtract" if op == "add" else "add"


def generate_problems(
    n: int, config: WordOp2Config | None = None, split: str = "train", for_sft: bool = False
) -> list[WordOp2Problem]:
    """``n`` distinct problems of ``split`` (``train`` / ``test``), deterministic for ``config.seed``.

    ``for_sft``: each operation written follows the question with probability ``fidelity``, independently."""
    cfg = config or WordOp2Config()
    check_split(split)
    r, out = random.Random(cfg.seed), []
    questions = distinct_questions(r, split, cfg.max_a, lambda r: _question(r, cfg))
    for q, ops, a, b, c, name, item in islice(questions, n):
        chatter = [r.choice(CHATTER).format(name=name, item=item) for _ in range(CHATTER_LEVELS[cfg.chatter])]
        written = ops
        if for_sft:  # two draws, one per decision: the flips are independent
            written = tuple(op if r.random() < cfg.fidelity else _flip(op) for op in ops)
        comp, v = write_completion(written, a, b, c, chatter)
        gold = _apply(ops[1], _apply(ops[0], a, b), c)
        out.append(WordOp2Problem(f"Question: {q}{PROMPT_END}", comp, v if for_sft else gold, ops, a, b, c))
    return out


def question_ops(prompt: str) -> tuple[str, str] | None:
    """The two operations the question's words name, in order; None unless exactly two phrases match."""
    found = sorted((m.start(), op) for op, rx in PHRASE_RE.items() for m in rx.finditer(prompt))
    return (found[0][1], found[1][1]) if len(found) == 2 else None


def question_numbers(prompt: str) -> tuple[int, int, int] | None:
    """``(a, b, c)``: the first three numbers of the question."""
    nums = [int(x) for x in re.findall(r"\d+", prompt)]
    return (nums[0], nums[1], nums[2]) if len(nums) >= 3 else None


def parse_completion(completion: str) -> list[dict]:
    """Each ``Operation: X.`` of a (model-written) completion, in order, as wordop's parse: ``op`` (word),
    ``op_span``, ``end`` (where its step ends: the next ``Operation:``, else the completion's end) and ``eq``
    (the first equation between the two, else None)."""
    found = list(OP_RE.finditer(completion))
    out = []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(completion)
        eq = EQ_RE.search(completion, m.end(), end)
        out.append({"op": m.group(1), "op_span": m.span(1), "end": end, "eq": eq})
    return out


def executed_correctly(prompt: str, completion: str) -> bool | None:
    """Whether the completion computes the two operations it chose, the first on the question's (a, b), the
    second on (the first's result as written, c), and answers the second's result; None when it lacks two
    operations, their equations or the answer (the first two operations are read)."""
    steps, ans = parse_completion(completion)[:2], extract_answer(completion)
    if len(steps) < 2 or any(s["eq"] is None for s in steps) or ans is None:
        return None
    nums = question_numbers(prompt)
    if nums is None:
        return False
    left = nums[0]
    for step, operand in zip(steps, nums[1:], strict=True):
        eq = step["eq"]
        x, sign, y, v = int(eq.group(1)), eq.group(2), int(eq.group(3)), int(eq.group(4))
        if (x, y) != (left, operand) or sign != OPS[step["op"]] or v != _apply(step["op"], x, y):
            return False
        left = v
    return ans == left


def chose_question_ops(prompt: str, completion: str) -> bool:
    """Whether the completion's first two operations are both the ones the question's words name."""
    return tuple(s["op"] for s in parse_completion(completion)[:2]) == question_ops(prompt)


def decision_choice_share(prompt: str, completion: str) -> float:
    """The share of the completion's first two operations that are the ones the question's words name (0, 0.5
    or 1): the gate's ``choice`` per decision, so its band means what it means for wordop's one decision."""
    want = question_ops(prompt) or (None, None)
    got = [s["op"] for s in parse_completion(completion)[:2]]
    return sum(g == w for g, w in zip(got, want, strict=False)) / 2
