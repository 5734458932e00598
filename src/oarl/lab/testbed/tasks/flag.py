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

Per-character oracle labels (:func:`oarl.lab.testbed.tasks.flag_labels.char_labels`): ``causal`` (the operator of an on-path flag-decided
step and the value digits of on-path steps), ``distractor`` (operator/value of off-path steps),
``chatter``, ``answer`` (digits after ``ANSWER``) and ``format`` (everything else: names, ``=``, ``;``,
operands, the marker).  :func:`~oarl.lab.testbed.tasks.flag_labels.decision_char_positions` gives the operators of on-path flag-decided steps
only: the tokens an oracle credit arm should weight.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oarl.lab.testbed.tasks.arith import ANSWER_MARKER, arith_reward

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


def operand_value(tok: str, env: dict[str, int]) -> int:
    return env[tok] if tok.isalpha() else int(tok)


def apply_op(op: str, x: int, y: int, modulus: int | None) -> int:
    v = _OPS[op](x, y)
    return v % modulus if modulus else v


def _all_branches_ok(consts: dict, steps: list[FlagStep], cfg: FlagConfig) -> bool:
    """Every step is in 0..value_max under every combination of operators (so any policy stays in range).

    Modular: the second operand of a flagged step must make ``+`` and ``-`` differ (``2y != 0 mod m``).
    """
    if cfg.modulus:
        env = dict(consts)
        for s in steps:
            y = operand_value(s.y, env)
            if s.role != "plain" and (2 * y) % cfg.modulus == 0:
                return False
            env[s.name] = apply_op(s.gold_op, operand_value(s.x, env), y, cfg.modulus)
        return True
    envs = [dict(consts)]
    for s in steps:
        ops = ("+", "-") if s.role != "plain" else (s.flag,)
        new = []
        for env in envs:
            x, y = operand_value(s.x, env), operand_value(s.y, env)
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
        v = apply_op(op, operand_value(s.x, env), operand_value(s.y, env), cfg.modulus)
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
