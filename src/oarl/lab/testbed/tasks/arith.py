"""Synthetic multi-step arithmetic task with known causal tokens.

A problem is a tiny straight-line program followed by a query; the model must write the value of
every derived variable in program order and then the answer::

    prompt:      "a=3;b=7;c=a+b;d=b-2;e=c+4;?e\\n"
    completion:  "c=10;d=5;e=14;ANSWER 14"

Steps on the dependency path of the queried variable (``c`` and ``e`` above) are causal; the
others (``d``) are distractors.  Because the ground-truth causal structure is known, scorers that
assign per-token credit can be compared by *oracle causal-token recall*.

Oracle tokens are defined as the **value characters** (digits, plus a leading ``-`` if a model
writes one) of causal derived steps in the reasoning part of a completion (everything before the
first ``ANSWER``).  Variable names, ``=`` and ``;`` are format, not content the answer depends on,
so they are excluded; base constants are given in the prompt and are never oracle tokens, even if
a model restates them; the text after ``ANSWER`` is the outcome itself and is excluded too.

Everything here runs offline (the character-level tokenizer and the tiny model every testbed task trains:
:mod:`oarl.lab.testbed.tiny_model`).  Programs are parsed with a small regex interpreter, never ``eval``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from oarl.lab.testbed.tiny_model import ANSWER_MARKER

if TYPE_CHECKING:  # heavy imports are deferred so generating/scoring problems stays cheap
    from datasets import Dataset

_OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}
_STMT_RE = re.compile(r"^([a-z])=(?:([a-z]|\d+)([+\-*])([a-z]|\d+)|(\d+))$")
# A `name=value` pair written by a model; the lookbehind rejects multi-letter names ("ab=3"),
# while a digit before the name is allowed so a missing ";" ("c=10e=14") still parses.
_PAIR_RE = re.compile(r"(?<![a-z])([a-z])=(-?\d+)")
_ANSWER_RE = re.compile(ANSWER_MARKER + r"\s*(-?\d+)")
_MAX_ANSWER_DIGITS = 18  # longer digit runs are garbage; also avoids int() on megabyte strings


@dataclass(frozen=True)
class ArithConfig:
    """Difficulty knobs.  ``int | (lo, hi)`` fields are sampled uniformly (inclusive) per problem.

    The defaults are deliberately easy: the default ``tiny_model.build_tiny_model`` (0.86M params), trained
    with plain completion-only SFT (AdamW lr 2e-3, batch 64, 1 CPU thread), reached ~35% greedy
    accuracy after 3 min and ~55% after 5 min, leaving headroom for RL.  ``chain_steps=(2, 3)``,
    ``distractor_steps=(1, 2)`` or ``value_max=99`` each made that budget land near 10-20%.
    """

    chain_steps: int | tuple[int, int] = 2  # derived steps on the query's dependency path
    distractor_steps: int | tuple[int, int] = 1  # derived steps the answer does not depend on
    num_constants: int = 2  # base constants a, b, ... (values in 0..const_max)
    const_max: int = 9  # max base constant and max literal operand
    value_max: int = 19  # every intermediate value stays in 0..value_max
    ops: tuple[str, ...] = ("+", "-")  # subset of "+-*"
    literal_prob: float = 0.5  # chance the second operand is a literal rather than a variable
    seed: int = 0

    def __post_init__(self) -> None:
        hi = _range(self.chain_steps)[1] + _range(self.distractor_steps)[1] + self.num_constants
        if hi > 26:
            raise ValueError(f"at most 26 variables (a-z), config allows {hi}")
        if self.num_constants < 1 or _range(self.chain_steps)[0] < 1:
            raise ValueError("need >= 1 constant and >= 1 chain step")
        if not self.ops or any(op not in _OPS for op in self.ops):
            raise ValueError(f"ops must be a non-empty subset of {sorted(_OPS)}")
        if not 0 <= self.const_max <= self.value_max:
            raise ValueError("need 0 <= const_max <= value_max")


@dataclass(frozen=True)
class Step:
    """One assignment.  ``role`` is "const", "chain" (causal for the query) or "distractor"."""

    name: str
    expr: str
    value: int
    deps: tuple[str, ...]
    role: str


@dataclass(frozen=True)
class ArithProblem:
    """A generated problem: text fields for training plus the program for analysis."""

    prompt: str
    completion: str  # gold solution
    answer: int
    oracle_char_spans: list[tuple[int, int]]  # [start, end) spans in `completion`
    steps: tuple[Step, ...] = field(default=())
    query: str = ""

    @property
    def causal_vars(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if s.role == "chain")


def _range(x: int | tuple[int, int]) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


def _make_step(
    rng: random.Random, first: tuple[str, int], pool: list[tuple[str, int]], cfg: ArithConfig
) -> tuple[str, int]:
    """Build ``first <op> operand`` with a result inside 0..value_max.

    Operands are drawn from variables in ``pool`` or literals; invalid draws are re-drawn and a
    last-resort ``+0`` keeps it total.
    """
    x_tok, x = first
    # Literal 0 is left out: "c-0" / "0+c" are no-op steps that teach nothing.
    literals = [(str(v), v) for v in range(1, cfg.const_max + 1)]
    for _ in range(50):
        op = rng.choice(cfg.ops)
        use_lit = rng.random() < cfg.literal_prob or not pool
        cands = [(t, v) for t, v in (literals if use_lit else pool) if 0 <= _OPS[op](x, v) <= cfg.value_max]
        if op == "*":  # "*1"/"*0" teach nothing and make values collapse to 0
            cands = [(t, v) for t, v in cands if v >= 2]
        if cands:
            y_tok, y = rng.choice(cands)
            a, b = (y_tok, x_tok) if op != "-" and rng.random() < 0.5 else (x_tok, y_tok)
            return f"{a}{op}{b}", _OPS[op](x, y)
    return f"{x_tok}+0", x


def _generate_one(rng: random.Random, cfg: ArithConfig) -> ArithProblem:
    n_chain = rng.randint(*_range(cfg.chain_steps))
    n_dist = rng.randint(*_range(cfg.distractor_steps))
    # Interleave distractors among chain steps (chain order preserved) so the query is not
    # always the last line and position alone does not reveal which steps matter.
    roles = ["chain"] * n_chain + ["distractor"] * n_dist
    rng.shuffle(roles)
    # The first derived step is always a chain step, so distractors can already read a derived
    # value (the accuracy figures in ArithConfig were measured with this layout).
    if roles[0] != "chain":
        roles.remove("chain")
        roles.insert(0, "chain")
    names = iter("abcdefghijklmnopqrstuvwxyz")
    steps: list[Step] = []
    for _ in range(cfg.num_constants):
        v = rng.randint(0, cfg.const_max)
        steps.append(Step(next(names), str(v), v, (), "const"))
    consts = [(s.name, s.value) for s in steps]
    prev_chain: tuple[str, int] | None = None
    for role in roles:
        name = next(names)
        if role == "chain":
            # Chain steps read only the previous chain value plus constants/literals, so the
            # dependency path is exactly the chain; distractors are never read by it.
            first = prev_chain or rng.choice(consts)
            pool = [c for c in consts if c[0] != first[0]]
        else:
            # Distractors may read anything earlier (chain values included), so they look like
            # real reasoning; nothing on the chain ever reads them.
            earlier = [(s.name, s.value) for s in steps]
            first = rng.choice(earlier)
            pool = [e for e in earlier if e[0] != first[0]]
        expr, value = _make_step(rng, first, pool, cfg)
        deps = tuple(dict.fromkeys(re.findall(r"[a-z]", expr)))
        steps.append(Step(name, expr, value, deps, role))
        if role == "chain":
            prev_chain = (name, value)
    assert prev_chain is not None
    query, answer = prev_chain
    prompt = "".join(f"{s.name}={s.expr};" for s in steps) + f"?{query}\n"
    reasoning = "".join(f"{s.name}={s.value};" for s in steps if s.role != "const")
    completion = f"{reasoning}{ANSWER_MARKER} {answer}"
    return ArithProblem(
        prompt=prompt,
        completion=completion,
        answer=answer,
        oracle_char_spans=oracle_char_spans_for(prompt, completion),
        steps=tuple(steps),
        query=query,
    )


def generate_problems(n: int, config: ArithConfig | None = None) -> list[ArithProblem]:
    """``n`` problems, deterministic for ``config.seed`` (uses a private ``random.Random``)."""
    cfg = config or ArithConfig()
    rng = random.Random(cfg.seed)
    return [_generate_one(rng, cfg) for _ in range(n)]


# ---------------------------------------------------------------- parsing / oracle spans


def parse_program(prompt: str) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """Parse a prompt into ``{name: deps}`` (program order) and the queried name (or None).

    Malformed statements are skipped rather than raising: oracle spans are computed for every
    rollout and a bad prompt should yield no spans, not crash training.
    """
    deps: dict[str, tuple[str, ...]] = {}
    query = None
    for stmt in prompt.strip().split(";"):
        stmt = stmt.strip()
        if stmt.startswith("?") and len(stmt) == 2:
            query = stmt[1]
        elif m := _STMT_RE.match(stmt):
            deps[m.group(1)] = tuple(dict.fromkeys(t for t in (m.group(2), m.group(4)) if t and t.isalpha()))
    return deps, query


def evaluate_program(prompt: str) -> dict[str, int]:
    """Values of all variables in a prompt, by a tiny interpreter (no ``eval``)."""
    env: dict[str, int] = {}
    for stmt in prompt.strip().split(";"):
        m = _STMT_RE.match(stmt.strip())
        if not m:
            continue
        if m.group(5) is not None:
            env[m.group(1)] = int(m.group(5))
            continue
        x, op, y = m.group(2), m.group(3), m.group(4)
        xv = env[x] if x.isalpha() else int(x)
        yv = env[y] if y.isalpha() else int(y)
        env[m.group(1)] = _OPS[op](xv, yv)
    return env


def dependency_path(prompt: str) -> list[str]:
    """Derived (non-constant) variables the query depends on, itself included, in program order."""
    deps, query = parse_program(prompt)
    if query is None or query not in deps:
        return []
    seen: set[str] = set()
    stack = [query]
    while stack:  # transitive closure over the dependency graph
        v = stack.pop()
        if v in seen or v not in deps:
            continue
        seen.add(v)
        stack.extend(deps[v])
    return [v for v in deps if v in seen and deps[v]]


def oracle_char_spans_for(prompt: str, completion: str) -> list[tuple[int, int]]:
    """``[start, end)`` spans of causal step values in any completion (gold or model-written).

    Only the reasoning part (before the first ``ANSWER``) is searched; every ``name=value``
    occurrence of a causal variable counts, even if the value is wrong, repeated, or the ``;``
    is missing: the positions are causal regardless of whether the model got them right.
    """
    causal = set(dependency_path(prompt))
    cut = completion.find(ANSWER_MARKER)
    reasoning = completion if cut < 0 else completion[:cut]
    return [m.span(2) for m in _PAIR_RE.finditer(reasoning) if m.group(1) in causal]


def char_spans_to_token_mask(
    offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[bool]:
    """True for each token whose character range ``offsets[i]`` overlaps any span.

    ``offsets`` and ``spans`` must share an origin: with the char-level tokenizer, encoding
    ``prompt + completion`` gives completion offsets shifted by ``len(prompt)``.
    """
    return [e > s and any(s < b and a < e for a, b in spans) for s, e in offsets]


# ---------------------------------------------------------------- rewards


def _text(completion: Any) -> str:
    # TRL passes plain strings, or message lists in conversational mode.
    if isinstance(completion, list):
        return str(completion[-1].get("content", "")) if completion else ""
    return completion if isinstance(completion, str) else ""


def extract_answer(completion: str) -> int | None:
    """Integer right after the first ``ANSWER`` marker, or None if absent or malformed."""
    m = _ANSWER_RE.search(_text(completion))
    if m is None or len(m.group(1).lstrip("-")) > _MAX_ANSWER_DIGITS:
        return None
    return int(m.group(1))


def arith_reward(prompts: list[Any], completions: list[Any], answer: list[int], **kwargs: Any) -> list[float]:
    """TRL reward function: 1.0 iff the extracted answer equals the gold ``answer`` column."""
    out = []
    for c, a in zip(completions, answer, strict=True):
        pred = extract_answer(c)
        out.append(1.0 if pred is not None and pred == int(a) else 0.0)
    return out


# ---------------------------------------------------------------- data


def make_dataset(n: int, config: ArithConfig | None = None) -> Dataset:
    """``datasets.Dataset`` with ``prompt``/``completion``/``answer`` (TRL SFT and GRPO format)."""
    from datasets import Dataset  # noqa: F811  (runtime import of the TYPE_CHECKING name)

    probs = generate_problems(n, config)
    return Dataset.from_dict(
        {
            "prompt": [p.prompt for p in probs],
            "completion": [p.completion for p in probs],
            "answer": [p.answer for p in probs],
        }
    )
