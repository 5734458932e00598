"""Answer extraction never crashes, stays in bounds and stays fast; rewards are bounded in time."""

from __future__ import annotations

import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarl.batch.spans import _boxed_spans, find_answer_span
from oarl.lab.math import rewards
from oarl.lab.math.mathcheck import normalize_answer
from oarl.lab.math.rewards import MathCheckWorker, check_answer, extract_answer, make_math_reward
from oarl.lab.testbed.tasks import arith

PIECES = [
    "\\boxed{", "\\fbox {", "{", "}", "####", "#### ", "ANSWER", "ANSWER ", "The answer is", "the final answer is:",
    "$", "\n", ".", ". ", " ", "-", "1", "42", "3.5", "1,000", "\\frac{1}{2}", "x", "é", "\x00", "\ufffd", "\t",
    "9" * 50,
]  # fmt: skip
completions = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=60).map("".join),
)


def boxed_reference(text: str) -> list[tuple[int, int, int]]:
    """The original quadratic brace scan (one scan per ``\\boxed{``): the linear one must agree."""
    spans = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0 and i - 1 > m.end():
            spans.append((m.start(), m.end(), i - 1))
    return spans


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completions)
def test_extraction_never_crashes_and_spans_are_in_bounds(text):
    span = find_answer_span(text)
    if span is not None:
        assert 0 <= span[0] < span[1] <= len(text)
    answer = extract_answer(text)
    assert answer is None or isinstance(answer, str)
    assert (answer is None) == (span is None) or answer == ""
    assert sorted(_boxed_spans(text)) == sorted(boxed_reference(text))
    value = arith.extract_answer(text)
    assert value is None or (isinstance(value, int) and abs(value) < 10**18)
    assert isinstance(normalize_answer(text), str)


@pytest.mark.parametrize(
    "text",
    [
        "\\boxed{" * 20_000,  # was quadratic (minutes)
        "{" * 20_000 + "\\boxed{1}",
        "The answer is " * 5_000,
        "#### " * 20_000,
        "ANSWER" * 20_000,
        "1 " + "a" * 5_000 + "!",  # was exponential backtracking in the unit-suffix regex
        "9" * 100_000,
    ],
    ids=["open-boxes", "open-braces", "answer-is", "hashes", "markers", "unit-suffix", "digits"],
)
def test_degenerate_completions_are_handled_in_linear_time(text):
    start = time.perf_counter()
    find_answer_span(text)
    normalize_answer(text[:10_000])
    arith.extract_answer(text)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "completion",
    [
        "\\boxed{9^{9^{9^{9^{9}}}}}",
        "#### " + "9" * 5000,
        "\\boxed{1e999999}",
        "\\boxed{((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))}",
        "\\boxed{\\frac{" * 200 + "1" + "}{2}" * 200 + "}",
        "\\boxed{x^{" * 100 + "2" + "}" * 100 + "}",
    ],
    ids=["power-tower", "5000-digits", "1e999999", "nested-parens", "nested-fracs", "nested-powers"],
)
def test_pathological_latex_is_bounded_and_scores_zero(completion):
    start = time.perf_counter()
    verdict = check_answer(completion, "7", timeout_seconds=1)
    assert verdict.correct is False
    assert time.perf_counter() - start < 15  # a few 1 s math-verify timeouts at most


def test_a_hanging_checker_off_the_main_thread_scores_zero_within_the_bound(monkeypatch):
    hung = MathCheckWorker(command=[sys.executable, "-c", "import time; time.sleep(120)"], hard_timeout=1.0)
    monkeypatch.setattr(rewards, "_WORKER", hung)
    reward = make_math_reward(timeout_seconds=1)

    def grade():
        assert threading.current_thread() is not threading.main_thread()
        return reward(completions=["\\boxed{7}"], answer=["7"])

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(grade).result(timeout=60) == [0.0]
        assert time.perf_counter() - start < 10  # 1 s hard timeout + a child start-up, on a loaded machine
    finally:
        hung.close()  # never leave the sleeping child behind
