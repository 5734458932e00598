"""Are two final answers the same? math-verify's answer, with its timeouts; also a worker process.

This module imports nothing from ``oarl`` (and so not torch): run as a script
(``python .../oarl/mathcheck.py``) it is the light worker :mod:`oarl.lab.math.rewards` uses for callers outside the
main thread. It reads one JSON request a line on stdin (``reference``, ``answer``, ``timeout``) and writes
``{"match": true | false | null}`` a line; it checks in its own main thread, where math-verify's
``signal``-based timeouts work.

Answers are read by math-verify's LaTeX path only (latex2sympy, a grammar parser). Its plain-expression
extractor, which hands text to sympy's ``parse_expr`` (an ``eval``), is never used: the only strings that
reach ``parse_expr`` are number tokens the LaTeX lexer has already matched (digits and a point). Nothing a
model writes is executed (tested).
"""

from __future__ import annotations

import json
import os
import re
import sys
from functools import lru_cache

_UNIT_SUFFIX = re.compile(r"^([-+]?(?:\\\$)?\s*\d[\d,]*(?:\.\d+)?)\s*(?:[A-Za-z]{2,}(?![A-Za-z])\.?\s*)+$")
# (?![A-Za-z]): a word is taken whole, so the repetition cannot re-split a letter run (no exponential
# backtracking on model text such as "1 aaaa...a!").
_DOLLAR = re.compile(r"(?<!\\)\$")


def normalize_answer(answer: str) -> str:
    """Answer text ready to be read as LaTeX: unescaped ``$`` removed, a trailing ``.`` dropped, and a number
    followed only by unit words (``18 dollars``) reduced to the number (LaTeX would read a product)."""
    text = _DOLLAR.sub("", answer).strip().rstrip(".").strip()
    m = _UNIT_SUFFIX.match(text)
    return m.group(1).strip() if m else text


@lru_cache(maxsize=16384)
def _parse_cached(text: str, timeout: int | None) -> tuple:
    from math_verify import LatexExtractionConfig, parse

    # raise_on_error: failures (timeouts included) propagate and so are not cached; the caller sees [].
    return tuple(
        parse(
            f"${text}$",
            extraction_config=[LatexExtractionConfig(boxed_match_priority=0)],
            parsing_timeout=timeout,
            raise_on_error=True,
        )
    )


def parse_answer(answer: str, timeout: int | None = 5) -> list:
    """math-verify's parse of one extracted answer; ``[]`` when it cannot be parsed in time.

    Cached: answers repeat (one reference per group of completions, short answers across groups).
    """
    from math_verify.errors import TimeoutException  # a BaseException, not an Exception

    try:
        return list(_parse_cached(normalize_answer(answer), timeout))
    except (Exception, TimeoutException):
        return []


def answers_match(reference: str, answer: str | None, timeout: int | None = 5) -> bool | None:
    """True/False: does ``answer`` equal ``reference`` by math-verify; None: the reference does not parse.

    ``timeout`` (seconds) bounds each math-verify call (two parses and the comparison); it needs the main
    thread. A timeout inside a comparison counts as "not equal".
    """
    from math_verify import verify

    gold = parse_answer(reference, timeout)
    if not gold:
        return None
    pred = parse_answer(answer, timeout) if answer else []
    if not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=timeout, raise_on_error=False))


def serve() -> int:
    """The worker loop (see the module docstring)."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the reply stream
    for line in sys.stdin:
        req = json.loads(line)
        replies.write(
            json.dumps({"match": answers_match(req["reference"], req["answer"], req["timeout"])}) + "\n"
        )
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
