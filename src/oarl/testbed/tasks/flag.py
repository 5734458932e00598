"""Flag-decided arithmetic: a synthetic task where RL has something to learn and credit can be localised.

Each derived step of a tiny program names its operator only through a *flag letter* (``p`` = plus,
``m`` = minus); the model must turn the flag into ``+``/``-`` and then execute::

    prompt:      "a=3;b=5;c=apb;d=cma;?d\\n"
    completion:  "c=a+b=8;d=c-a=5;ANSWER 5"

The warm start (SFT) sees data that follows each flag only with probability ``fidelity`` (the written
operator is the other one otherwise, and the values/answer are computed with the operator actually
written, so execution is always consistent).  The warm policy therefore executes reliably but *decides*
with entropy ~H(fidelity) at every flag-decided operator; RL (reward = answer under the flag rule) must
learn to follow the flags.  Knobs:

* ``decisions``: flag-decided steps on the query's dependency path (each one must be right);
* ``flagged_distractors``: flag-decided steps off the path: same-looking, equally uncertain decisions
  whose outcome never reaches the answer (a credit confounder that shares features with the causal ones);
* ``plain_distractors``: off-path steps with a literal operator in the prompt (``e=b+a``);
* ``chatter``: ``"none" | "some" | "heavy"`` (or an explicit ``(lo, hi)`` length range): a free-form
  remark inserted after every operator decision, before its value (``c=a+b; qz+4 ma;=8;``).  Chatter
  characters are drawn uniformly at random (so the warm policy emits them with high entropy) and never
  feed the answer.  ``chatter_style`` picks the character set: ``"letters"`` (``q``-``z`` and space, shares
  nothing with the reasoning) or ``"mixed"`` (variable names, ``+``/``-``, digits and space: shares
  features with the decisive tokens).

Completion grammar (``;``-separated segments, so any model-written text can be labelled)::

    step     := NAME "=" X OP Y [ ";" CHATTER ] "=" VALUE ";"
    CHATTER  := " " chars (no ";" "=" "\\n")
    answer   := "ANSWER " VALUE

Per-character oracle labels (:func:`char_labels`): ``causal`` (the operator of an on-path flag-decided
step and the value digits of on-path steps), ``distractor`` (operator/value of off-path steps),
``chatter``, ``answer`` (digits after ``ANSWER``) and ``format`` (everything else: names, ``=``, ``;``,
operands, the marker).  :func:`decision_char_positions` gives the operators of on-path flag-decided steps
only: the tokens an oracle credit arm should weight.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oarl.testbed.tasks.arith import ANSWER_MARKER, arith_reward, build_tiny_model, build_tokenizer  # noqa: F401

if TYPE_CHECKING:
    from datasets import Dataset

FLAG_OPS = {"p": "+", "m": "-"}
OP_FLAGS = {v: k for k, v in FLAG_OPS.items()}
CHATTER_LEVELS = {"none": (0, 0), "some": (6, 12), "heavy": (16, 24)}
CHATTER_CHARS = {
    "letters": "qrstuvwxyz ",
    "mixed": "abcdefgh+-0123456789 ",
}
_OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y}
_DEC_RE = re.compile(r"^([a-z])=([a-z0-9]+?)([+\-])([a-z0-9]+)$")  # c=a+b  (decision written)
_VAL_RE = re.compile(r"^=(-?\d+)$")  # =8  (value after the decision or after chatter)
_PSTEP_RE = re.compile(r"^([a-z])=([a-z]|\d+)([pm+\-])([a-z]|\d+)$")
_PCONST_RE = re.compile(r"^([a-z])=(\d+)$")


@dataclass(frozen=True)
class FlagConfig:
    """Task knobs; deterministic for ``seed``."""

    decisions: int = 1  # flag-decided steps on the dependency path of the query
    flagged_distractors: int = 0  # flag-decided steps whose value is never used
    plain_distractors: int = 0  # off-path steps with a literal operator
    fidelity: float = 0.65  # P(SFT data writes the operator the flag names), per decision
    chatter: str | tuple[int, int] = "none"  # none / some / heavy or an explicit (lo, hi) length
    chatter_style: str = "letters"  # letters / mixed
    num_constants: int = 3
    const_max: int = 9
    value_max: int = 19
    modulus: int | None = None  # None: plain ints in 0..value_max; 10: values mod 10 (harder to learn by SFT)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.decisions < 1:
            raise ValueError("need >= 1 decision")
        if self.num_constants < 2:
            raise ValueError("need >= 2 constants")
        n = self.num_constants + self.decisions + self.flagged_distractors + self.plain_distractors
        if n > 12:  # names a..l; p and m are flags and must never be variable names
            raise ValueError(f"at most 12 variables, config has {n}")
        if not 0.0 <= self.fidelity <= 1.0:
            raise ValueError("fidelity must be in [0, 1]")
        if self.chatter_style not in CHATTER_CHARS:
            raise ValueError(f"chatter_style must be one of {sorted(CHATTER_CHARS)}")
        chatter_range(self)  # validates

    @property
    def chatter_chars(self) -> str:
        return CHATTER_CHARS[self.chatter_style]


def chatter_range(cfg: FlagConfig) -> tuple[int, int]:
    if isinstance(cfg.chatter, str):
        if cfg.chatter not in CHATTER_LEVELS:
            raise ValueError(f"chatter must be one of {sorted(CHATTER_LEVELS)} or (lo, hi)")
        return CHATTER_LEVELS[cfg.chatter]
    lo, hi = int(cfg.chatter[0]), int(cfg.chatter[1])
    if not 0 <= lo <= hi:
        raise ValueError("chatter range must satisfy 0 <= lo <= hi")
    return lo, hi


@dataclass(frozen=True)
class FlagStep:
    name: str
    x: str  # operand tokens (a name or a literal)
    y: str
    flag: str  # "p"/"m" for flag-decided steps, "+"/"-" for plain ones
    role: str  # "chain" | "flagged" | "plain"

    @property
    def gold_op(self) -> str:
        return FLAG_OPS.get(self.flag, self.flag)


@dataclass(frozen=True)
class FlagProblem:
    prompt: str
    completion: str  # gold (flag-following) solution, or the SFT sample when made for SFT
    answer: int  # gold answer under the flag rule (what RL rewards)
    query: str
    steps: tuple[FlagStep, ...]
    consts: dict


# ---------------------------------------------------------------- generation


def _value(tok: str, env: dict[str, int]) -> int:
    return env[tok] if tok.isalpha() else int(tok)


def _apply(op: str, x: int, y: int, modulus: int | None) -> int:
    v = _OPS[op](x, y)
    return v % modulus if modulus else v


def _all_branches_ok(consts: dict, steps: list[FlagStep], cfg: FlagConfig) -> bool:
    """Every step is in 0..value_max under every combination of operators (so any policy stays in range).

    Modular: the second operand of a flagged step must make ``+`` and ``-`` differ (``2y != 0 mod m``).
    """
    if cfg.modulus:
        env = dict(consts)
        for s in steps:
            y = _value(s.y, env)
            if s.role != "plain" and (2 * y) % cfg.modulus == 0:
                return False
            env[s.name] = _apply(s.gold_op, _value(s.x, env), y, cfg.modulus)
        return True
    envs = [dict(consts)]
    for s in steps:
        ops = ("+", "-") if s.role != "plain" else (s.flag,)
        new = []
        for env in envs:
            x, y = _value(s.x, env), _value(s.y, env)
            if s.role != "plain" and y == 0:  # x+0 == x-0: a decision that decides nothing
                return False
            for op in ops:
                v = _OPS[op](x, y)
                if not 0 <= v <= cfg.value_max:
                    return False
                new.append({**env, s.name: v})
        envs = new if len(new) <= 256 else new[:256]
    return True


def _generate_one(rng: random.Random, cfg: FlagConfig) -> tuple[str, dict, list[FlagStep], str]:
    names = list("abcdefghijkl")
    const_names = names[: cfg.num_constants]
    roles = (
        ["chain"] * cfg.decisions + ["flagged"] * cfg.flagged_distractors + ["plain"] * cfg.plain_distractors
    )
    for _ in range(1000):
        rng.shuffle(roles)
        consts = {n: rng.randint(0, cfg.const_max) for n in const_names}
        steps: list[FlagStep] = []
        prev_chain: str | None = None
        earlier = list(const_names)
        for i, role in enumerate(roles):
            name = names[cfg.num_constants + i]
            if role == "chain":
                x = prev_chain or rng.choice(const_names)
                y = rng.choice([c for c in const_names if c != x])
                flag = rng.choice("pm")
                prev_chain = name
            else:
                x = rng.choice(earlier)
                y = rng.choice([c for c in earlier if c != x])
                flag = rng.choice("pm") if role == "flagged" else rng.choice("+-")
            steps.append(FlagStep(name, x, y, flag, role))
            earlier.append(name)
        if _all_branches_ok(consts, steps, cfg):
            break
    else:  # pragma: no cover - the value ranges make this practically unreachable
        raise RuntimeError("could not generate a problem with in-range values")
    prompt = "".join(f"{n}={v};" for n, v in consts.items())
    prompt += "".join(f"{s.name}={s.x}{s.flag}{s.y};" for s in steps) + f"?{prev_chain}\n"
    return prompt, consts, steps, prev_chain  # type: ignore[return-value]


def _chatter(rng: random.Random, cfg: FlagConfig) -> str:
    lo, hi = chatter_range(cfg)
    n = rng.randint(lo, hi)
    if n == 0:
        return ""
    return " " + "".join(rng.choice(cfg.chatter_chars) for _ in range(n - 1))


def _write(rng: random.Random, cfg: FlagConfig, consts: dict, steps: list[FlagStep], query: str,
           follow: float) -> tuple[str, int]:  # fmt: skip
    """A completion whose flag-decided operators follow the flag with probability ``follow``."""
    env = dict(consts)
    out = []
    for s in steps:
        op = s.gold_op
        if s.role != "plain" and rng.random() >= follow:
            op = "+" if op == "-" else "-"
        v = _apply(op, _value(s.x, env), _value(s.y, env), cfg.modulus)
        env[s.name] = v
        ch = _chatter(rng, cfg)
        out.append(f"{s.name}={s.x}{op}{s.y}" + (f";{ch}" if ch else "") + f"={v};")
    return "".join(out) + f"{ANSWER_MARKER} {env[query]}", env[query]


def generate_problems(n: int, config: FlagConfig | None = None, for_sft: bool = False) -> list[FlagProblem]:
    """``n`` problems, deterministic for ``config.seed``.

    ``for_sft``: completions follow each flag with probability ``fidelity`` (their values consistent with
    the operator written); otherwise completions are gold.  ``answer`` is always the gold (flag-rule)
    answer... except for SFT rows, where it is the answer of the completion actually written.
    """
    cfg = config or FlagConfig()
    rng = random.Random(cfg.seed)
    out = []
    for _ in range(n):
        prompt, consts, steps, query = _generate_one(rng, cfg)
        gold, gold_ans = _write(random.Random(rng.random()), cfg, consts, steps, query, 1.0)
        if for_sft:
            comp, ans = _write(rng, cfg, consts, steps, query, cfg.fidelity)
        else:
            comp, ans = _write(rng, cfg, consts, steps, query, 1.0)
        out.append(FlagProblem(prompt, comp, ans if for_sft else gold_ans, query, tuple(steps), consts))
    return out


# ---------------------------------------------------------------- parsing / oracle labels


def parse_prompt(prompt: str) -> tuple[dict[str, FlagStep], str | None]:
    """``{name: FlagStep}`` of the derived steps and the queried name (malformed statements skipped)."""
    steps: dict[str, FlagStep] = {}
    query = None
    for stmt in prompt.strip().split(";"):
        stmt = stmt.strip()
        if stmt.startswith("?") and len(stmt) == 2:
            query = stmt[1]
        elif m := _PSTEP_RE.match(stmt):
            flag = m.group(3)
            steps[m.group(1)] = FlagStep(
                m.group(1), m.group(2), m.group(4), flag, "flagged" if flag in "pm" else "plain"
            )
    return steps, query


def dependency_path(prompt: str) -> set[str]:
    steps, query = parse_prompt(prompt)
    seen: set[str] = set()
    stack = [query] if query else []
    while stack:
        v = stack.pop()
        if v in seen or v not in steps:
            continue
        seen.add(v)
        stack.extend(t for t in (steps[v].x, steps[v].y) if t.isalpha())
    return seen


def gold_answer(prompt: str, modulus: int | None = 10) -> int | None:
    """Answer of ``prompt`` under the flag rule (tiny interpreter, no eval)."""
    env: dict[str, int] = {}
    query = None
    for stmt in prompt.strip().split(";"):
        stmt = stmt.strip()
        if stmt.startswith("?"):
            query = stmt[1:]
        elif m := _PCONST_RE.match(stmt):
            env[m.group(1)] = int(m.group(2))
        elif m := _PSTEP_RE.match(stmt):
            op = FLAG_OPS.get(m.group(3), m.group(3))
            env[m.group(1)] = _apply(op, _value(m.group(2), env), _value(m.group(4), env), modulus)
    return env.get(query) if query else None


LABELS = ("causal", "distractor", "chatter", "answer", "format")


def char_labels(prompt: str, completion: str) -> list[str]:
    """One label per character of ``completion``; see :func:`annotate`."""
    return annotate(prompt, completion)[0]


def annotate(prompt: str, completion: str) -> tuple[list[str], list[int]]:
    """(labels, decision positions). One label per character of ``completion`` (gold or model-written); see the module docstring.

    Parsing is by ``;`` segments: ``x=y<op>z`` (an operator decision), `` ...`` (chatter), ``=N`` (a value,
    attached to the last decision's variable), ``ANSWER N``.  Anything unparsable is ``format``.
    """
    steps, _ = parse_prompt(prompt)
    path = dependency_path(prompt)
    labels = ["format"] * len(completion)
    cut = completion.find(ANSWER_MARKER)
    reasoning_end = len(completion) if cut < 0 else cut
    if cut >= 0:
        for i in range(cut + len(ANSWER_MARKER), len(completion)):
            if completion[i].isdigit() or completion[i] == "-":
                labels[i] = "answer"
    pos = 0
    decisions: list[int] = []
    current: str | None = None
    for seg in completion[:reasoning_end].split(";"):
        start = pos
        pos += len(seg) + 1
        if not seg:
            continue
        if seg[0] == " ":  # chatter, then "=N" (the value of the current step)
            eq = seg.find("=")
            end = len(seg) if eq < 0 else eq
            for i in range(start, start + end):
                labels[i] = "chatter"
            if eq < 0:
                continue
            seg, start = seg[eq:], start + eq
        if m := _DEC_RE.match(seg):
            current = m.group(1)
            step = steps.get(current)
            if step is not None and step.flag in "pm":
                labels[start + m.start(3)] = "causal" if current in path else "distractor"
                if current in path:
                    decisions.append(start + m.start(3))
            elif step is not None:  # plain step: the operator is copied, not decided
                labels[start + m.start(3)] = "format" if current in path else "distractor"
            continue
        # "=N" after chatter, or "c=a+b=8" (decision and value in one segment)
        m2 = re.match(r"^([a-z])=([a-z0-9]+?)([+\-])([a-z0-9]+)=(-?\d+)$", seg)
        if m2:
            current = m2.group(1)
            step = steps.get(current)
            role = "causal" if current in path else "distractor"
            if step is not None and step.flag in "pm":
                labels[start + m2.start(3)] = role
                if current in path:
                    decisions.append(start + m2.start(3))
            elif step is not None and current not in path:
                labels[start + m2.start(3)] = "distractor"
            for i in range(start + m2.start(5), start + m2.end(5)):
                labels[i] = role if step is not None else "format"
            continue
        if (m3 := _VAL_RE.match(seg)) and current is not None:
            role = "causal" if current in path else "distractor"
            for i in range(start + m3.start(1), start + m3.end(1)):
                labels[i] = role
    return labels, decisions


def decision_char_positions(prompt: str, completion: str, with_values: bool = False) -> list[int]:
    """Char positions of the on-path flag-decided operators (``with_values``: plus on-path value digits)."""
    labels, decisions = annotate(prompt, completion)
    if not with_values:
        return decisions
    return sorted(set(decisions) | {i for i, lab in enumerate(labels) if lab == "causal"})


# ---------------------------------------------------------------- rewards / data


#: TRL reward: 1.0 iff the integer after ``ANSWER`` equals the gold (flag-rule) ``answer`` column. The flag task
#: writes its answer as the arithmetic task does, so it is the same function.
flag_reward = arith_reward


def make_dataset(n: int, config: FlagConfig | None = None, for_sft: bool = False) -> Dataset:
    """``prompt``/``completion``/``answer`` rows (TRL SFT and GRPO format).

    ``for_sft=True``: completions follow flags with probability ``fidelity``; else gold completions and
    the gold answer (RL / evaluation).
    """
    from datasets import Dataset

    probs = generate_problems(n, config, for_sft=for_sft)
    return Dataset.from_dict(
        {
            "prompt": [p.prompt for p in probs],
            "completion": [p.completion for p in probs],
            "answer": [p.answer for p in probs],
        }
    )
