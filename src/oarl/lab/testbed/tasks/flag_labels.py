"""Oracle labels of the flag task: parse a prompt, follow the query's dependency path, and label every
character of any completion (gold or model-written) with its role; see :mod:`oarl.lab.testbed.tasks.flag` for
the grammar and the roles."""

from __future__ import annotations

import re

from oarl.lab.testbed.tasks.arith import ANSWER_MARKER
from oarl.lab.testbed.tasks.flag import FLAG_OPS, FlagStep, apply_op, operand_value

_DEC_RE = re.compile(r"^([a-z])=([a-z0-9]+?)([+\-])([a-z0-9]+)$")  # c=a+b  (decision written)
_VAL_RE = re.compile(r"^=(-?\d+)$")  # =8  (value after the decision or after chatter)
_PSTEP_RE = re.compile(r"^([a-z])=([a-z]|\d+)([pm+\-])([a-z]|\d+)$")
_PCONST_RE = re.compile(r"^([a-z])=(\d+)$")


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
            env[m.group(1)] = apply_op(
                op, operand_value(m.group(2), env), operand_value(m.group(4), env), modulus
            )
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
